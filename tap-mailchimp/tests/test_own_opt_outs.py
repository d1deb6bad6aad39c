"""Loops: opt-outs the forward flow made (target-mailchimp's audit trail) are not sent back.

Real target-mailchimp writes to the Mailchimp sandbox fill its audit trail; the tap, pointed at
that trail (`forward_audit_store_url`), leaves out exactly the unsubscribes those writes made and
keeps every unsubscribe the person made, polled or delivered by webhook.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from exactmc_sandbox.mailchimp.clock import format_time
from tap_mailchimp.testing import record_events, run_tap
from target_mailchimp.testing import audit_rows, base_config, run_target, stream

LATER = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _member(email: str, **fields: Any) -> dict[str, Any]:
    return {"email": email, "status_if_new": "subscribed", "source_updated_at": LATER,
            "merge_fields": {"FNAME": "Test"}, **fields}


def _event(sandbox: Any, email: str) -> str:
    """The unsubscribe webhook Mailchimp sends for this member's latest change."""
    fired = datetime.fromisoformat(sandbox.member(email)["last_changed"])
    return json.dumps({"type": "unsubscribe", "fired_at": fired.strftime("%Y-%m-%d %H:%M:%S"),
                       "list_id": sandbox.list_id, "email": email})


def test_forward_flow_opt_outs_are_not_sent_back_but_peoples_own_are(
        mailchimp_sandbox, config, tmp_path: Path):
    (tmp_path / "forward").mkdir()
    forward = base_config(mailchimp_sandbox, tmp_path / "forward")
    # blocked@: created unsubscribed (a blocked account's contact); inactive@: existing,
    # opted out by a later run (PUT); own@ and own-then-updated@ unsubscribe themselves, the
    # latter then gets a routine update from the forward flow (still their own unsubscribe),
    # own@ a tag.
    run_target(forward, stream("members", [
        _member("blocked@example.com", opt_out=True), _member("inactive@example.com"),
        _member("own@example.com"), _member("own-then-updated@example.com")]))
    mailchimp_sandbox.advance_clock(5)
    mailchimp_sandbox.set_member_status("own@example.com", "unsubscribed")
    mailchimp_sandbox.set_member_status("own-then-updated@example.com", "unsubscribed")
    mailchimp_sandbox.advance_clock(5)
    run_target(forward, stream("members", [
        _member("inactive@example.com", opt_out=True),
        _member("own-then-updated@example.com", merge_fields={"FNAME": "Renamed"})]))
    # Tagging changes members without answering for them (target-mailchimp confirms those
    # changes as its own side effects): after our opt-out, and after a person's unsubscribe.
    mailchimp_sandbox.advance_clock(5)
    before = {e: mailchimp_sandbox.member(e)["last_changed"]
              for e in ("blocked@example.com", "own@example.com")}
    run_target(forward, stream("member_tags", [
        {"email": e, "tag_key": "cc-100", "tag_name": "CC 100 · Sales (101)", "active": True,
         "source_updated_at": LATER} for e in before]))
    assert all(mailchimp_sandbox.member(e)["last_changed"] != at for e, at in before.items())
    statuses = {m["email_address"]: m["status"] for m in mailchimp_sandbox.members()}
    # The routine update after the person's unsubscribe really was written (and answered).
    assert audit_rows(forward, record_key="own-then-updated@example.com", operation="update",
                      outcome="ok")
    assert set(statuses.values()) == {"unsubscribed"}
    # Webhooks registered with API-sourced events on (the tap must not rely on them being off).
    record_events(config["mailchimp_inbox_url"],
                  [_event(mailchimp_sandbox, e) for e in sorted(statuses)])

    config["forward_audit_store_url"] = forward["audit_store_url"]
    records, _ = run_tap(config)
    sent_back = {(r["email"], r["source"]) for r in records["mailing_exclusions"]}
    assert sent_back == {(e, s) for e in ("own@example.com", "own-then-updated@example.com")
                         for s in ("poll", "webhook")}

    # Without the forward flow's trail every unsubscribe goes back (as before).
    del config["forward_audit_store_url"]
    records, _ = run_tap(config)
    assert {r["email"] for r in records["mailing_exclusions"]} == set(statuses)


def test_a_forward_trail_not_yet_made_hides_nothing(mailchimp_sandbox, audience, config,
                                                    tmp_path: Path):
    audience.subscribe("ann@example.com")
    mailchimp_sandbox.set_member_status("ann@example.com", "unsubscribed")
    config["forward_audit_store_url"] = f"sqlite:///{tmp_path}/never-written.sqlite"
    records, _ = run_tap(config)
    assert [r["email"] for r in records["mailing_exclusions"]] == ["ann@example.com"]
    ann = mailchimp_sandbox.member("ann@example.com")
    assert records["mailing_exclusions"][0]["changed_at"] == format_time(
        datetime.fromisoformat(ann["last_changed"]))
