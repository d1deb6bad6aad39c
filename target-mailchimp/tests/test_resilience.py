"""Faults: 429 storms within the connection limit, 5xx, outages, replay, secrets, kill -9."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from target_mailchimp import admin
from target_mailchimp.client import OutageError, subscriber_hash
from target_mailchimp.target import TargetMailchimp
from target_mailchimp.testing import (
    audit_rows,
    base_config,
    by_email,
    run_target,
    state,
    stream,
    to_lines,
)

CUSTOMERS = [{"id": f"C{i}", "email": f"c{i}@example.com"} for i in range(60)]


def test_429_storm_stays_within_ten_in_flight(mailchimp_sandbox_factory, tmp_path):
    sandbox = mailchimp_sandbox_factory(max_in_flight=10, latency=0.05)
    config = base_config(sandbox, tmp_path, batch_operations_threshold=0)
    sandbox.add_fault(path="/customers/", kind="status", status=429, count=40,
                      body={"title": "Too Many Requests", "status": 429,
                            "detail": "You have exceeded the limit of 10 simultaneous "
                                      "connections."})
    run_target(config, stream("customers", CUSTOMERS))

    customers = sandbox.store("exact-store")["customers"]
    assert len(customers) == 60
    calls = sandbox.calls()
    assert calls["max_in_flight_seen_overall"] <= 10
    assert calls["max_in_flight_seen_overall"] >= 2  # the writes really ran in parallel
    statuses = [c["status"] for c in calls["calls"]]
    assert statuses.count(429) == 40
    assert len(audit_rows(config, stream="customers", outcome="ok")) == 60


def test_sandbox_refusing_connections_is_retried(mailchimp_sandbox_factory, tmp_path):
    # Another app holds most of the account's connections: only 3 are left for us.
    sandbox = mailchimp_sandbox_factory(max_in_flight=3, latency=0.05)
    config = base_config(sandbox, tmp_path, batch_operations_threshold=0,
                         retry_backoff_factor=0.1, retry_max_tries=12)
    run_target(config, stream("customers", CUSTOMERS[:30]))
    assert len(sandbox.store("exact-store")["customers"]) == 30
    assert any(c["status"] == 429 for c in sandbox.calls()["calls"])


def test_5xx_and_dropped_connections_are_retried(mailchimp_sandbox, config):
    mailchimp_sandbox.add_fault(path=r"^/3\.0/lists/[^/]+$", method="POST", kind="status",
                                status=503, count=2)
    mailchimp_sandbox.add_fault(path="/customers/C1$", kind="drop", count=1)
    mailchimp_sandbox.add_fault(path="/customers/C2$", kind="status", status=500, count=2)
    run_target(config, [*stream("members", [{"email": "r@example.com"}]),
                        *stream("customers", CUSTOMERS[:5])])
    assert "r@example.com" in by_email(mailchimp_sandbox)
    assert len(mailchimp_sandbox.store("exact-store")["customers"]) == 5
    assert audit_rows(config, outcome="failed") == []


def test_outage_raises_and_state_is_not_advanced(mailchimp_sandbox, config):
    config["retry_max_tries"] = 3
    mailchimp_sandbox.add_fault(path=r"^/3\.0/lists/[^/]+$", method="POST", kind="status",
                                status=503, count=100)
    out = io.StringIO()
    target = TargetMailchimp(config=config)
    with contextlib.redirect_stdout(out), pytest.raises(OutageError, match="after retries"):
        target.listen(io.StringIO(to_lines([
            *stream("members", [{"email": "o@example.com"}]), state({"bookmark": 2})])))
    assert out.getvalue() == ""  # no STATE: the next run starts from the previous bookmark
    assert mailchimp_sandbox.members() == []


def test_replay_after_fault(mailchimp_sandbox, config, tmp_path, capsys):
    bad = {"title": "Invalid Resource", "status": 400, "detail": "Temporary validation hiccup"}
    mailchimp_sandbox.add_fault(path="/customers/C3$", method="PUT", kind="status", status=400,
                                count=1, body=bad)
    run_target(config, stream("customers", CUSTOMERS[:5]))
    assert "C3" not in mailchimp_sandbox.store("exact-store")["customers"]
    [failed] = audit_rows(config, outcome="failed")
    assert failed["record_key"] == "C3" and "hiccup" in failed["reason"]

    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    assert admin.main(["replay", "--config", str(config_path)]) == 0
    assert "1 succeeded" in capsys.readouterr().out
    assert "C3" in mailchimp_sandbox.store("exact-store")["customers"]
    [row] = audit_rows(config, record_key="C3", outcome="failed")
    assert row["replay_outcome"] == "ok" and row["replayed_at"] is not None
    # Replaying again finds nothing left to do.
    assert admin.main(["replay", "--config", str(config_path)]) == 0
    assert "0 succeeded" in capsys.readouterr().out


def test_replay_member_rejected_in_batch(mailchimp_sandbox, config, tmp_path, capsys):
    run_target(config, stream("members", [{"email": "ok@example.com"},
                                          {"email": "x@example.com", "status_if_new": "bogus"}]))
    failed = audit_rows(config, outcome="failed")
    assert [r["record_key"] for r in failed] == ["x@example.com"]
    assert "bogus" in failed[0]["reason"]
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    admin.main(["replay", "--config", str(config_path), "--verbose"])
    assert "not replayable" in capsys.readouterr().out  # bad input: fix it at the source


def test_no_secret_in_logs_state_or_audit(mailchimp_sandbox, config, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    mailchimp_sandbox.add_fault(path="/customers/", kind="status", status=503, count=2)
    mailchimp_sandbox.add_fault(path="/customers/C1$", method="PUT", kind="status",
                                status=400, count=1)
    run_target(config, [*stream("members", [{"email": "s@example.com"}, {"email": "bad"}]),
                        *stream("customers", CUSTOMERS[:3]), state({"s": 1})])
    secret = mailchimp_sandbox.api_key
    assert secret not in caplog.text
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err
    db = Path(config["audit_store_url"].removeprefix("sqlite:///")).read_bytes()
    assert secret.encode() not in db
    assert len(audit_rows(config, outcome="failed")) == 2
    assert secret not in repr(TargetMailchimp(config=config).run_context.client._session.auth)


def _wait_for_calls(sandbox, at_least: int, process: subprocess.Popen, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while sandbox.calls()["total"] < at_least:
        assert process.poll() is None, "target finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_killed_mid_batch_then_rerun_has_no_duplicates_or_gaps(mailchimp_sandbox_factory,
                                                               tmp_path):
    sandbox = mailchimp_sandbox_factory(latency=0.05)
    config = base_config(sandbox, tmp_path, batch_size=50, batch_size_rows=500,
                         batch_operations_threshold=0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    emails = [f"k{i}@example.com" for i in range(1500)]
    products = [{"id": "P1", "title": "Widget", "price": 1.0}]
    customers = [{"id": f"C{i}", "email": f"k{i}@example.com"} for i in range(100)]
    orders = [{"id": f"O{i}", "customer_id": f"C{i}", "currency_code": "EUR", "order_total": 1,
               "lines": [{"id": "1", "product_id": "P1", "quantity": 1, "price": 1}]}
              for i in range(100)]
    # Source stamps older than the writes: a rerun must recognise the killed run's writes as
    # its own, not as edits made in Mailchimp.
    messages = [*stream("members", [{"email": e, "merge_fields": {"FNAME": "K"},
                                     "source_updated_at": "2024-01-01T00:00:00Z"}
                                    for e in emails]),
                *stream("products", products), *stream("customers", customers),
                *stream("orders", orders), state({"bookmarks": {"done": True}})]
    (tmp_path / "input.jsonl").write_text(to_lines(messages))
    command = [sys.executable, "-m", "target_mailchimp.target", "--config",
               str(tmp_path / "config.json"), "--input", str(tmp_path / "input.jsonl")]

    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    _wait_for_calls(sandbox, 12, first)
    os.kill(first.pid, signal.SIGKILL)
    first_out, _ = first.communicate(timeout=30)
    assert first_out == b""  # killed before the end: no STATE was confirmed
    partial = len(sandbox.members())
    assert 0 < partial < len(emails)

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=120, check=True)
    assert json.loads(second.stdout.decode().strip().splitlines()[-1]) == {
        "bookmarks": {"done": True}}
    assert config["api_key"] not in second.stderr.decode()
    members = sandbox.members()
    assert sorted(m["email_address"] for m in members) == sorted(emails)
    assert all(m["status"] == "subscribed" for m in members)
    assert audit_rows(config, outcome="skipped") == []
    assert audit_rows(config, outcome="failed") == []
    store = sandbox.store("exact-store")
    assert sorted(store["orders"]) == sorted(o["id"] for o in orders)
    assert len(store["customers"]) == 100


def _replay(config, tmp_path) -> int:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    return admin.main(["replay", "--config", str(config_path)])


def test_replay_never_restores_a_contact_archived_since(mailchimp_sandbox, config, tmp_path,
                                                        capsys):
    run_target(config, stream("members", [{"email": "later-gone@example.com"}]))
    mailchimp_sandbox.add_fault(path=f"/members/{subscriber_hash('later-gone@example.com')}$",
                                method="PUT", kind="status", status=400, count=1)
    run_target(config, stream("members", [{"email": "later-gone@example.com",
                                           "merge_fields": {"FNAME": "X"}}]))
    assert len(audit_rows(config, stream="members", outcome="failed")) == 1
    # Archived in Mailchimp (an archive by our own deletions stream supersedes the write: the
    # run settles it, tested in test_healing.py).
    mailchimp_sandbox.set_member_status("later-gone@example.com", "archived")

    assert _replay(config, tmp_path) == 0
    assert by_email(mailchimp_sandbox)["later-gone@example.com"]["status"] == "archived"
    assert "0 succeeded, 0 still failing, 1 skipped" in capsys.readouterr().out
    [row] = audit_rows(config, stream="members", outcome="failed")
    assert row["replay_outcome"] == "skipped" and "archived" in row["replay_response"]


def test_replay_does_not_overwrite_a_later_successful_write(mailchimp_sandbox, config,
                                                            tmp_path, capsys):
    mailchimp_sandbox.add_fault(path="/customers/C3$", method="PUT", kind="status",
                                status=400, count=1)
    run_target(config, stream("customers", [{"id": "C3", "email": "c3@example.com",
                                             "first_name": "Old"}]))
    run_target(config, stream("customers", [{"id": "C3", "email": "c3@example.com",
                                             "first_name": "New"}]))
    # The run with the newer data settled the stale write itself, without sending it.
    [row] = audit_rows(config, record_key="C3", outcome="failed")
    assert row["replay_outcome"] == "skipped" and "superseded" in row["replay_response"]
    assert _replay(config, tmp_path) == 0
    assert mailchimp_sandbox.store("exact-store")["customers"]["C3"]["first_name"] == "New"
    assert "0 succeeded, 0 still failing, 0 skipped" in capsys.readouterr().out


def test_per_record_400s_from_mailchimp_do_not_hold_state_back(mailchimp_sandbox, config):
    mailchimp_sandbox.add_fault(path="/customers/C1$", method="PUT", kind="status",
                                status=400, count=1)
    states = run_target(config, [
        # Mailchimp refuses the fake-looking address inside the batch-subscribe answer.
        *stream("members", [{"email": "fake@example.org"}, {"email": "real@example.com"}]),
        *stream("customers", CUSTOMERS[:3]), state({"bookmark": 7})])
    assert states == [{"bookmark": 7}]
    failed = {r["record_key"] for r in audit_rows(config, outcome="failed")}
    assert failed == {"fake@example.org", "C1"}


def test_replay_keeps_a_change_made_in_mailchimp_after_the_write_failed(
    mailchimp_sandbox, config, tmp_path, capsys
):
    email = "edited@example.com"
    run_target(config, stream("members", [{"email": email, "merge_fields": {"FNAME": "A"}}]))
    mailchimp_sandbox.add_fault(path=f"/members/{subscriber_hash(email)}$", method="PUT",
                                kind="status", status=400, count=1)
    run_target(config, stream("members", [{"email": email, "merge_fields": {"FNAME": "B"}}]))
    mailchimp_sandbox.advance_clock(5)
    mailchimp_sandbox.set_member_status(email, "unsubscribed")  # an edit in Mailchimp

    assert _replay(config, tmp_path) == 0
    assert by_email(mailchimp_sandbox)[email]["merge_fields"]["FNAME"] == "A"
    assert "changed in Mailchimp" in capsys.readouterr().out
