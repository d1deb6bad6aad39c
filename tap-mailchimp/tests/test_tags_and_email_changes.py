"""tags (static segments, incremental on updated_at) and email_changes (upemail webhooks)."""

from __future__ import annotations

import json
from typing import Any

from exactmc_sandbox.mailchimp.webhook_delivery import form_fields
from tap_mailchimp.testing import inbox_line, record_events, run_tap


def _bookmark(state: dict[str, Any], stream: str) -> str:
    [partition] = state["bookmarks"][stream]["partitions"]
    return partition["replication_key_value"]


def test_tags_created_then_renamed(mailchimp_sandbox, audience, config):
    audience.subscribe("ann@example.com")
    first = audience.create_tag("CC 100 · Sales (NL)")
    mailchimp_sandbox.advance_clock(60)
    second = audience.create_tag("CC 200 · Support (NL)")

    records, state = run_tap(config)

    got = {r["segment_id"]: r for r in records["tags"]}
    assert set(got) == {first, second}
    assert got[first]["name"] == "CC 100 · Sales (NL)"
    assert got[first]["list_id"] == mailchimp_sandbox.list_id
    assert got[first]["member_count"] == 0
    assert got[first]["created_at"] and got[first]["updated_at"].endswith("+00:00")
    assert _bookmark(state, "tags") == max(r["updated_at"] for r in got.values())

    first_bookmark = _bookmark(state, "tags")
    assert got[first]["updated_at"] < first_bookmark

    mailchimp_sandbox.advance_clock(60)
    audience.rename_tag(first, "CC 100 · Sales and Marketing (NL)")
    records, state = run_tap(config, state)

    # The renamed tag; the other only if it changed at the bookmark itself (the bound is
    # inclusive). The sandbox ignores since_updated_at, so this proves the tap's own filter.
    got = {r["segment_id"]: r for r in records["tags"]}
    assert got[first]["name"] == "CC 100 · Sales and Marketing (NL)"
    assert set(got) <= {first, second}
    assert got.get(second, {"updated_at": first_bookmark})["updated_at"] == first_bookmark
    assert _bookmark(state, "tags") == got[first]["updated_at"] > first_bookmark


def test_email_changes_from_upemail_events(mailchimp_sandbox, config):
    list_id = mailchimp_sandbox.list_id
    member = {"id": "x", "email_address": "New@Example.com", "old_email": "Old@Example.com"}
    record_events(config["mailchimp_inbox_url"], [
        inbox_line(form_fields("upemail", "2026-11-27 11:00:00", list_id, member)),
        inbox_line(form_fields("unsubscribe", "2026-11-27 11:00:01", list_id,
                               {"id": "y", "email_address": "eve@example.com"})),
        json.dumps({"type": "upemail", "fired_at": "2026-11-27T11:00:02Z", "list_id": list_id,
                    "old_email": "a@example.com", "new_email": "b@example.com"}),
    ])

    records, state = run_tap(config)

    assert records["email_changes"] == [
        {"list_id": list_id, "old_email": "old@example.com", "new_email": "new@example.com",
         "fired_at": "2026-11-27T11:00:00+00:00"},
        {"list_id": list_id, "old_email": "a@example.com", "new_email": "b@example.com",
         "fired_at": "2026-11-27T11:00:02+00:00"},
    ]
    assert _bookmark(state, "email_changes") == "2026-11-27T11:00:02+00:00"
    # The upemail event is no exclusion.
    assert [r["email"] for r in records["mailing_exclusions"]] == ["eve@example.com"]
