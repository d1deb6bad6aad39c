"""The audit trail and the target's memories behind one database URL: SQLite and a real
PostgreSQL server (started by the tests), a schema per tenant, concurrent writers, and a real
target run against the Mailchimp sandbox with its audit on PostgreSQL (replay, status)."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from target_mailchimp import admin
from target_mailchimp.audience_memory import AudienceMemory
from target_mailchimp.audit import FAILED, OK, SKIPPED, AuditEntry, AuditStore, OwnWrite
from target_mailchimp.run_log import RunLog
from target_mailchimp.status import StatusReport, render_text
from target_mailchimp.target import TargetMailchimp
from target_mailchimp.testing import audit_rows, base_config, run_target, stream, to_lines
from target_mailchimp.written import WrittenRecords

HICCUP = {"title": "Invalid Resource", "status": 400, "detail": "Temporary validation hiccup"}
UTC = datetime.timezone.utc
LONG_KEY = json.dumps(["someone@example.com", "t" * 600])  # PostgreSQL enforces lengths


@pytest.fixture(autouse=True)
def _no_fleet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test picks its own database; nothing of the developer's project leaks in."""
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXACTMC_TENANT", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))


def _failed(key: str, stream_name: str = "products") -> AuditEntry:
    return AuditEntry(stream_name, key, "upsert", FAILED, reason="400 hiccup", method="PUT",
                      path=f"/ecommerce/stores/s/products/{key}" + "/x" * 400,
                      payload={"id": key, "title": "é"})


def test_trail_and_memories_on_both_backends(database_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGTZ", "Europe/Amsterdam")  # times still come back in UTC
    audit = AuditStore(database_url, "run-1")
    audit.record([_failed("p1"), _failed("p2"), AuditEntry("members", "k" * 300, "update", OK)])
    audit.record([AuditEntry("products", "p2", "upsert", OK)])  # supersedes p2's failure
    rows = list(audit.failed_unreplayed())
    assert [r["record_key"] for r in rows] == ["p1", "p2"]
    assert all(r["at"].utcoffset() == datetime.timedelta(0) for r in rows)
    assert all(abs(r["at"] - datetime.datetime.now(UTC)).total_seconds() < 60 for r in rows)
    assert len(rows[0]["path"]) > 512 and json.loads(rows[0]["payload"])["title"] == "é"
    assert not audit.superseded(rows[0]) and audit.superseded(rows[1])
    assert len(audit.entries(stream="members")[0]["record_key"]) == 255  # kept as before
    for _ in range(2):
        audit.mark_replayed(rows[0]["id"], FAILED, "400 again")
    audit.mark_replayed(rows[1]["id"], SKIPPED, "superseded")
    [left] = audit.failed_unreplayed()
    assert left["attempts"] == 2 and left["replay_outcome"] == FAILED

    # Member memory: more addresses than one IN (...) chunk, pending then settled, forgotten.
    emails = [f"m{i}@example.com" for i in range(1200)]
    audit.mark_members_pending("L1", emails, "2026-01-01T00:00:00+00:00")
    audit.settle_members("L1", emails[:600], {e: "2026-01-02T00:00:00+00:00"
                                              for e in emails[:600:2]})
    known = audit.own_member_changes("L1", emails)
    assert known[emails[0]] == OwnWrite("2026-01-02T00:00:00+00:00", None)
    assert emails[1] not in known  # attempted, not confirmed: unmarked
    assert len(audit.pending_members("L1")) == 600
    audit.forget_members("L1", emails)
    assert audit.own_member_changes("L1", emails) == {}

    audit.mark_store_syncing("s1")
    audit.mark_store_syncing("s1")  # again: still one row
    assert audit.store_left_syncing("s1")
    audit.clear_store_syncing("s1")
    assert not audit.store_left_syncing("s1")
    audit.remember_segment("L1", "cc-1", 3_000_000_001, "CC 1")
    audit.remember_segment("L1", "cc-1", 3_000_000_001, "CC 1 renamed")
    assert audit.segment_for_tag("L1", "cc-1") == (3_000_000_001, "CC 1 renamed")
    assert audit.tag_keys_of_segment("L1", 3_000_000_001) == ["cc-1"]

    written = WrittenRecords(audit.engine, "L1|s1", "run-1")
    digests = {json.dumps([e]): "a" * 64 for e in emails[:700]} | {LONG_KEY: "b" * 64}
    written.remember("member_tags", digests)
    written.remember("member_tags", {**digests, LONG_KEY: "c" * 64})
    assert written.unchanged("member_tags", {LONG_KEY: "c" * 64,
                                             json.dumps([emails[0]]): "a" * 64}) == {
        LONG_KEY, json.dumps([emails[0]])}
    written.forget_deleted([("member", "someone@example.com")])
    assert written.unchanged("member_tags", {LONG_KEY: "c" * 64}) == set()
    assert written.failed_since("products", 0) == {"p1", "p2"}

    memory = AudienceMemory(audit.engine, "L1")
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    memory.remember({e: ("subscribed", "x") for e in emails}, start, start)
    memory.remember({emails[0]: ("unsubscribed", "y")}, start, start + datetime.timedelta(1))
    assert memory.span() == (start, start + datetime.timedelta(1))
    assert memory.members()[emails[0]] == ("unsubscribed", "y")
    memory.forget(emails[:1000])
    assert len(memory.members()) == 200

    run_log = RunLog({"audit_store_url": database_url})
    run_log.ended(True, None)
    audit.close()


def test_concurrent_writers_of_the_same_keys(postgres_url: str) -> None:
    """Two runs' memories of one audience written at once (a rerun, a reconcile beside a
    sync): upserts, so neither fails on the other's keys."""
    audit = AuditStore(postgres_url, "run-1")
    written = WrittenRecords(audit.engine, "L1|s1", "run-1")
    keys = [json.dumps([f"m{i}@example.com"]) for i in range(300)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def write(n: int) -> None:
        try:
            barrier.wait()
            for round_ in range(5):
                written.remember("members", {k: f"{n}-{round_}" for k in keys})
                audit.mark_members_pending("L1", [k[2:-2] for k in keys], "2026-01-01")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with audit.engine.connect() as conn:
        digests = conn.execute(sa.text("SELECT digest FROM written_records")).scalars().all()
    # Each run's memory is written whole: the last one to commit holds every key.
    assert len(digests) == 300 and len(set(digests)) == 1 and digests[0].endswith("-4")


def test_two_tenants_on_one_database_see_only_their_own(database_url: str,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """No audit_store_url: the fleet's EXACTMC_DATABASE_URL, split per EXACTMC_TENANT."""
    monkeypatch.setenv("EXACTMC_DATABASE_URL", database_url)
    run_ids = {}
    for tenant in ("acme", "bolt"):
        monkeypatch.setenv("EXACTMC_TENANT", tenant)
        audit = AuditStore(None, f"run-{tenant}")
        audit.record([_failed(f"{tenant}-p")])
        run_log = RunLog({})
        run_log.ended(True, None)
        run_ids[tenant] = run_log.run_id
    for tenant in ("acme", "bolt"):
        monkeypatch.setenv("EXACTMC_TENANT", tenant)
        assert [r["record_key"] for r in audit_rows({"audit_store_url": None})] == [
            f"{tenant}-p"]
        report = StatusReport({}).build()
        assert report["mailchimp"]["last_successful_run"]["run_id"] == run_ids[tenant]
        [group] = report["mailchimp"]["failing_writes"]["by_reason"]
        assert [e["key"] for e in group["newest"]] == [f"{tenant}-p"]
    assert not (tmp_path / "sys").exists()  # nothing went to the per-project default file


def test_default_is_a_file_under_meltano_sys_dir(tmp_path: Path) -> None:
    assert "default" not in TargetMailchimp.config_jsonschema["properties"]["audit_store_url"]
    AuditStore(None, "run").record([_failed("p1")])
    assert (tmp_path / "sys" / "target-mailchimp" / "audit.sqlite").exists()
    assert StatusReport({}).build()["mailchimp"]["failing_writes"]["count"] == 1


def test_a_target_run_on_postgresql_then_replay_and_status(mailchimp_sandbox: Any,
                                                           postgres_url: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    config = base_config(mailchimp_sandbox, tmp_path, batch_operations_threshold=0,
                         audit_store_url=postgres_url)
    mailchimp_sandbox.add_fault(path=r"/ecommerce/stores/[^/]+/products/", method="PUT",
                                kind="status", status=400, count=1, body=HICCUP)
    run_target(config, stream("products", [{"id": "p1", "title": "P", "price": 1.0}]))
    run_target(config, stream("members", [{"email": f"p{i}@example.com", "source_key": f"k{i}"}
                                          for i in range(3)]))
    assert {(r["stream"], r["record_key"], r["outcome"]) for r in audit_rows(config)} == {
        ("products", "p1", FAILED), *(("members", f"p{i}@example.com", OK) for i in range(3))}
    engine = sa.create_engine(postgres_url)  # really there, in the tenant-less schema
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM exactmc__target_mailchimp.audit_writes")).scalar() == 4
        assert conn.execute(sa.text("SELECT outcome FROM exactmc__target_mailchimp.target_runs"
                                    )).scalars().all() == ["ok", "ok"]
    engine.dispose()

    (tmp_path / "config.json").write_text(json.dumps(config))
    assert admin.main(["replay", "--config", str(tmp_path / "config.json")]) == 0
    assert "1 succeeded" in capsys.readouterr().out
    assert "p1" in mailchimp_sandbox.store("exact-store")["products"]
    [row] = audit_rows(config, outcome=FAILED)
    assert row["replay_outcome"] == OK

    report = StatusReport(config).build()
    assert report["status"] == "ok", report["problems"]
    assert report["mailchimp"]["last_successful_run"]["writes"] == {
        "members create": {"ok": 3}}
    text = render_text(report)
    assert "Writes still failing: none." in text and "members create: 3 ok" in text


def test_a_later_run_heals_on_postgresql(mailchimp_sandbox: Any, postgres_url: str,
                                         tmp_path: Path) -> None:
    """Healing's backoff reads the failed write's time back from PostgreSQL (timestamptz)."""
    config = base_config(mailchimp_sandbox, tmp_path, audit_store_url=postgres_url)
    mailchimp_sandbox.add_fault(path="/products/P1$", method="PUT", kind="status", status=400,
                                count=1, body=HICCUP)
    now = [datetime.datetime.now(UTC)]

    def run(messages: list[dict[str, Any]]) -> None:
        target = TargetMailchimp(config=config)
        target.run_context.clock = lambda: now[0]
        with contextlib.redirect_stdout(io.StringIO()):
            target.listen(io.StringIO(to_lines(messages)))

    run(stream("products", [{"id": "P1", "title": "Widget", "price": 9.5}]))
    assert "P1" not in mailchimp_sandbox.store("exact-store")["products"]
    run([])  # within the backoff: not yet sent again
    assert [r["replay_outcome"] for r in audit_rows(config, outcome=FAILED)] == [None]
    now[0] += datetime.timedelta(minutes=11)
    run([])
    assert mailchimp_sandbox.store("exact-store")["products"]["P1"]["title"] == "Widget"
    assert [r["replay_outcome"] for r in audit_rows(config, outcome=FAILED)] == [OK]


def _schemas(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE '%\\_\\_%'")).scalars())
    finally:
        engine.dispose()


def test_status_of_a_tenant_that_never_ran_makes_nothing(postgres_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`status` only reads: for a tenant whose job never ran (or a mistyped one) on the fleet's
    PostgreSQL it says so, and leaves no empty schema behind for the audit or the mapper."""
    monkeypatch.setenv("EXACTMC_DATABASE_URL", postgres_url)
    monkeypatch.setenv("EXACTMC_TENANT", "acmee")
    report = StatusReport({}).build()
    assert report["mailchimp"] is None and report["rejected_records"]["count"] == 0
    assert any("acmee__target_mailchimp" in problem and "No target run" in problem
               for problem in report["problems"]), report["problems"]
    assert _schemas(postgres_url) == set()

    AuditStore(None, "run").record([_failed("p1")])  # the tenant's first run
    assert _schemas(postgres_url) == {"acmee__target_mailchimp"}
    assert StatusReport({}).build()["mailchimp"]["failing_writes"]["count"] == 1
    assert _schemas(postgres_url) == {"acmee__target_mailchimp"}  # still no mapper schema
