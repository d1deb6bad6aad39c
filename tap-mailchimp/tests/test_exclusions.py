"""mailing_exclusions: unsubscribes and cleaned addresses, polled and from the webhook inbox."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from exactmc_sandbox.mailchimp.clock import format_time
from exactmc_sandbox.mailchimp.webhook_delivery import form_fields
from tap_mailchimp.inbox import open_inbox
from tap_mailchimp.testing import inbox_line, record_events, run_tap


def _by_email(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["email"]: r for r in records}


def test_polls_unsubscribed_and_cleaned_members(mailchimp_sandbox, audience, config):
    audience.subscribe("Ann@Example.com", "bob@example.com", "cleo@example.com")
    mailchimp_sandbox.set_member_status("ann@example.com", "unsubscribed")
    mailchimp_sandbox.set_member_status("bob@example.com", "cleaned")

    records, state = run_tap(config)

    got = _by_email(records["mailing_exclusions"])
    assert set(got) == {"ann@example.com", "bob@example.com"}  # lower-case, cleo still subscribed
    assert got["ann@example.com"]["status"] == "unsubscribed"
    assert got["bob@example.com"]["status"] == "cleaned"
    ann = mailchimp_sandbox.member("ann@example.com")
    assert got["ann@example.com"]["changed_at"] == format_time(
        datetime.fromisoformat(ann["last_changed"]))
    assert {r["source"] for r in got.values()} == {"poll"}
    assert {r["list_id"] for r in got.values()} == {mailchimp_sandbox.list_id}
    # One bookmark per list (partition), at the newest change seen.
    [partition] = state["bookmarks"]["mailing_exclusions"]["partitions"]
    assert partition["context"] == {"list_id": mailchimp_sandbox.list_id}
    assert partition["replication_key_value"] == max(r["changed_at"] for r in got.values())


def test_next_run_reads_only_changes_since_the_bookmark(mailchimp_sandbox, audience, config):
    audience.subscribe("ann@example.com", "bob@example.com")
    mailchimp_sandbox.set_member_status("ann@example.com", "unsubscribed")
    audience.subscribe("cleo@example.com")
    mailchimp_sandbox.advance_clock(60)
    mailchimp_sandbox.set_member_status("cleo@example.com", "unsubscribed")
    _, state = run_tap(config)
    first_bookmark = _bookmark(state)

    mailchimp_sandbox.advance_clock(60)
    mailchimp_sandbox.set_member_status("bob@example.com", "unsubscribed")
    records, state = run_tap(config, state)

    got = _by_email(records["mailing_exclusions"])
    # ann (older than the bookmark) is not read again; cleo, changed at the bookmark itself, may
    # be (Mailchimp's filter includes its bound, so a change in the same second is never lost).
    assert "ann@example.com" not in got and "bob@example.com" in got
    assert set(got) <= {"bob@example.com", "cleo@example.com"}
    assert got.get("cleo@example.com", {"changed_at": first_bookmark})["changed_at"] \
        == first_bookmark
    assert _bookmark(state) == got["bob@example.com"]["changed_at"] > first_bookmark


def _bookmark(state: dict[str, Any], stream: str = "mailing_exclusions") -> str:
    [partition] = state["bookmarks"][stream]["partitions"]
    return partition["replication_key_value"]


def test_webhook_events_from_the_inbox(mailchimp_sandbox, config, tmp_path: Path):
    list_id = mailchimp_sandbox.list_id
    member = {"id": "x", "email_address": "Dora@Example.com", "merge_fields": {"FNAME": "D"}}
    lines = [
        inbox_line(form_fields("unsubscribe", "2026-11-27 10:00:00", list_id, member,
                               reason="manual")),
        inbox_line(form_fields("cleaned", "2026-11-27 10:00:05", list_id,
                               {"id": "y", "email_address": "eve@example.com"}, reason="hard")),
        inbox_line(form_fields("subscribe", "2026-11-27 10:00:06", list_id,
                               {"id": "z", "email_address": "fay@example.com"})),
        inbox_line(form_fields("unsubscribe", "2026-11-27 10:00:07", "other-list",
                               {"id": "w", "email_address": "gus@example.com"})),
        # exactmc-webhooks writes the fields flat, fired_at already ISO:
        json.dumps({"type": "unsubscribe", "fired_at": "2026-11-27T10:00:09Z",
                    "list_id": list_id, "email": "hal@example.com", "reason": "manual"}),
        json.dumps({"email": "ivy@example.com"}),  # no type: skipped
        json.dumps({"type": "unsubscribe", "fired_at": "soon", "email": "jo@example.com"}),
    ]
    record_events(config["mailchimp_inbox_url"], lines)

    records, state = run_tap(config)

    got = _by_email(records["mailing_exclusions"])
    assert set(got) == {"dora@example.com", "eve@example.com", "hal@example.com"}
    assert got["dora@example.com"] == {
        "list_id": list_id, "email": "dora@example.com", "status": "unsubscribed",
        "changed_at": "2026-11-27T10:00:00+00:00", "source": "webhook"}
    assert got["eve@example.com"]["status"] == "cleaned"
    [partition] = state["bookmarks"]["mailing_exclusions"]["partitions"]
    assert partition["replication_key_value"] == "2026-11-27T10:00:09+00:00"

    # Events older than the bookmark were seen already (by this run or by a poll).
    records, _ = run_tap(config, state)
    assert [r["email"] for r in records["mailing_exclusions"]] == ["hal@example.com"]
    # ... so that run trimmed them (the list's and unlisted ones, and types no stream reads):
    # the inbox stays bounded. Other lists' events and unreadable entries are not its to trim.
    left = open_inbox(config["mailchimp_inbox_url"]).mailchimp_entries()
    assert [e.get("email") or e.get("data", {}).get("email") for e in left] == [
        "gus@example.com", "hal@example.com", "ivy@example.com", "jo@example.com"]


def test_missing_inbox_is_no_events(mailchimp_sandbox, config):
    records, _ = run_tap(config)  # the file does not exist
    assert records.get("mailing_exclusions", []) == []


def test_start_date_bounds_a_list_without_bookmark(mailchimp_sandbox, audience, config):
    audience.subscribe("ann@example.com")
    mailchimp_sandbox.set_member_status("ann@example.com", "unsubscribed")
    changed = mailchimp_sandbox.member("ann@example.com")["last_changed"]

    before, _ = run_tap({**config, "start_date": "2000-01-01"})
    after, _ = run_tap({**config, "start_date": "2999-01-01T00:00:00Z"})

    assert [r["changed_at"] for r in before["mailing_exclusions"]] == [
        format_time(datetime.fromisoformat(changed))]
    assert after.get("mailing_exclusions", []) == []
