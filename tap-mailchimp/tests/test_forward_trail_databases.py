"""The forward flow's audit trail read where target-mailchimp writes it: SQLite or a real
PostgreSQL server (started by the tests), and with no setting the same URL target-mailchimp
resolves (the fleet's EXACTMC_DATABASE_URL, the tenant's own schema)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from secret_store.database import store_exists
from tap_mailchimp.inbox import utc_iso
from tap_mailchimp.own_opt_outs import ForwardTrail
from target_mailchimp.audit import OK, AuditEntry, AuditStore

MOMENT = "2026-11-01T10:00:00+00:00"


def _our_opt_out(url: str | None, email: str) -> None:
    """What target-mailchimp's opt-out write leaves in its trail."""
    audit = AuditStore(url, "forward-run")
    answer = json.dumps({"status": "unsubscribed", "last_changed": MOMENT})
    audit.record([AuditEntry("members", email, "opt_out", OK, response=f"200 {answer}")])
    audit.remember_member_changes("L1", {email: MOMENT})
    audit.close()


def _unsubscribes(*emails: str) -> list[dict[str, str]]:
    return [{"email": e, "status": "unsubscribed", "changed_at": utc_iso(MOMENT),
             "list_id": "L1", "source": "poll"} for e in emails]


def _sent_back(trail: ForwardTrail, *emails: str) -> list[str]:
    try:
        return [r["email"] for r in trail.without_ours(_unsubscribes(*emails))]
    finally:
        trail.close()


def test_own_opt_outs_are_recognised_on_both_backends(database_url: str) -> None:
    _our_opt_out(database_url, "ours@example.com")
    assert _sent_back(ForwardTrail(database_url), "ours@example.com", "theirs@example.com") == [
        "theirs@example.com"]


def test_no_setting_reads_the_tenants_trail_in_the_fleet_database(
        database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXACTMC_DATABASE_URL", database_url)
    monkeypatch.setenv("EXACTMC_TENANT", "acme")
    _our_opt_out(None, "acme@example.com")
    emails = ("acme@example.com", "bolt@example.com")
    assert _sent_back(ForwardTrail(None), *emails) == ["bolt@example.com"]
    monkeypatch.setenv("EXACTMC_TENANT", "bolt")  # another tenant: acme's trail is not its own
    assert _sent_back(ForwardTrail(""), *emails) == list(emails)
    assert not (tmp_path / "meltano-sys").exists()
    # Read only: bolt's target never ran, so no trail (file or schema) of its was made.
    assert not store_exists(database_url, "target_mailchimp", "bolt")
    assert store_exists(database_url, "target_mailchimp", "acme")


def test_no_setting_reads_target_mailchimps_default_file(tmp_path: Path) -> None:
    default = tmp_path / "meltano-sys" / "target-mailchimp" / "audit.sqlite"
    assert _sent_back(ForwardTrail(None), "ours@example.com") == ["ours@example.com"]
    assert not default.exists()  # read only: the other plugin's file is never created
    _our_opt_out(None, "ours@example.com")
    assert default.exists()
    assert _sent_back(ForwardTrail(None), "ours@example.com") == []
