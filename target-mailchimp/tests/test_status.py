"""`target-mailchimp-admin status` on runs of the target itself (in-process, real HTTP to the
sandbox) and on summaries the other plugins leave: runs, failing writes, an old refresh token."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from secret_store.database import engine_for, store_url
from target_mailchimp.admin import main
from target_mailchimp.status import StatusReport, render_text
from target_mailchimp.testing import base_config, run_target, stream

HICCUP = {"title": "Invalid Resource", "status": 400, "detail": "Temporary validation hiccup"}
NOW = datetime.datetime.now(datetime.timezone.utc)


def _iso(days_ago: float) -> str:
    return (NOW - datetime.timedelta(days=days_ago)).isoformat(timespec="seconds")


def mapper_rejection(url: str, **row: object) -> None:
    """A dead letter as mapper-exact-mailchimp writes it (docs/contracts.md)."""
    engine = engine_for(store_url(url), "mapper")
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "CREATE TABLE IF NOT EXISTS rejections (id INTEGER PRIMARY KEY, rejected_at TEXT,"
                " stream TEXT, division BIGINT, key TEXT, reason TEXT, value TEXT)"))
            connection.execute(sa.text(
                "INSERT INTO rejections (rejected_at, stream, division, key, reason, value)"
                " VALUES (:rejected_at, :stream, :division, :key, :reason, :value)"), row)
            connection.execute(sa.text(  # still standing: the record was not fixed since
                "CREATE TABLE IF NOT EXISTS reported (stream TEXT, key TEXT, reason TEXT,"
                " PRIMARY KEY (stream, key))"))
            connection.execute(sa.text(
                "INSERT INTO reported VALUES (:stream, :division || ':' || :key, :reason)"
                " ON CONFLICT (stream, key) DO UPDATE SET reason = excluded.reason"), row)
    finally:
        engine.dispose()


def test_nothing_recorded_yet(tmp_path: Path) -> None:
    report = StatusReport({"audit_store_url": f"sqlite:///{tmp_path}/none.sqlite"}).build()
    assert report["status"] == "attention" and report["mailchimp"] is None
    assert report["problems"][0].startswith("No target run has been recorded yet")
    assert not (tmp_path / "none.sqlite").exists()  # status only reads


def test_runs_failing_writes_and_an_old_token(mailchimp_sandbox, tmp_path: Path, capsys):
    config = base_config(mailchimp_sandbox, tmp_path, batch_operations_threshold=0,
                         exact_run_summary_path=str(tmp_path / "tap.json"),
                         mapper_store_url=str(tmp_path / "lookup.sqlite"),
                         # a folder the first run makes: its run is noted all the same
                         audit_store_url=f"sqlite:///{tmp_path}/new/audit.sqlite")
    members = [{"email": f"p{i}@example.com", "source_key": f"k{i}"} for i in range(3)]
    run_target(config, stream("members", members))

    mailchimp_sandbox.add_fault(path=r"/ecommerce/stores/[^/]+/products/", method="PUT",
                                kind="status", status=400, count=1, body=HICCUP)
    run_target(config, stream("products", [{"id": "p1", "title": "P", "price": 1.0}]))
    with pytest.raises(Exception, match="No Mailchimp audience named"):  # a run that fails
        run_target({**config, "list_id": None, "list_name": "nope"},
                   stream("members", [{"email": "x@example.com"}]))

    (tmp_path / "tap.json").write_text(json.dumps({"last": {
        "finished_at": _iso(26), "outcome": "ok", "records": {"accounts": 4},
        "budget": {"101": {"daily_limit": 5000, "daily_remaining": 4990,
                           "daily_reset": _iso(25)}},
        "refresh_token_issued_at": _iso(26)}}))
    mapper_rejection(str(tmp_path / "lookup.sqlite"), rejected_at=_iso(1), stream="contacts",
                     division=101, key="guid-1", reason="no usable email (missing)",
                     value='{"Email": null}')

    report = StatusReport(config).build()
    mailchimp = report["mailchimp"]
    last = mailchimp["last_successful_run"]
    assert last["writes"] == {"products upsert": {"failed": 1}}  # the newest good run
    [failed_run] = mailchimp["runs_since_with_errors"]
    assert failed_run["outcome"] == "failed"
    assert "No Mailchimp audience named" in failed_run["detail"]
    [group] = mailchimp["failing_writes"]["by_reason"]
    assert group["count"] == 1 and "Temporary validation hiccup" in group["reason"]
    assert group["newest"][0]["key"] == "p1"
    assert report["exact"]["budget_today"]["101"]["used"] == 0  # Exact's day rolled over
    [rejected] = report["rejected_records"]["by_reason"]
    assert rejected["newest"] == [{"time": _iso(1), "stream": "contacts", "division": 101,
                                   "key": "guid-1"}]  # never the value (personal data)
    problems = report["problems"]
    assert any(p.startswith("The refresh token is 26 days old and no run has succeeded since")
               and "tap-exactonline:authorize" in p for p in problems)
    assert any("1 target run(s) failed since the last successful one" in p for p in problems)
    assert any("still failing" in p for p in problems)
    assert "Writes still failing: 1." in render_text(report)

    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["status", "--config", str(path), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "attention"
