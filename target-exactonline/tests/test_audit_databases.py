"""target-exactonline's audit trail behind one database URL: SQLite and a real PostgreSQL
server (started by the tests), a schema per tenant, the default file per Meltano system dir,
and a real run against the Exact sandbox with its trail on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from target_exactonline.audit import FAILED, WRITTEN, AuditTrail, Decision
from target_exactonline.target import TargetExactOnline
from target_exactonline.testing import audit_rows, base_config, run_target, stream


@pytest.fixture(autouse=True)
def _no_fleet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXACTMC_TENANT", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))


def _decisions(tenant: str) -> list[Decision]:
    return [Decision("mailing_exclusions", f"{tenant}@example.com" + "x" * 400, "exclude",
                     WRITTEN, "é" * 600, division=3_000_000_001, entity="Contacts",
                     entity_key="c" * 100),
            Decision("mailing_exclusions", f"{tenant}-2@example.com", "exclude", FAILED)]


def test_trail_on_both_backends(database_url: str) -> None:
    trail = AuditTrail(database_url, "run-1")
    trail.record(*_decisions("ann"))
    rows = trail.entries()
    assert [r["outcome"] for r in rows] == [WRITTEN, FAILED]
    assert rows[0]["division"] == 3_000_000_001 and len(rows[0]["entity_key"]) == 100
    assert rows[0]["at"].utcoffset() is None or rows[0]["at"].utcoffset().total_seconds() == 0
    assert trail.entries(outcome=FAILED)[0]["record_key"] == "ann-2@example.com"
    assert trail.counts == {WRITTEN: 1, FAILED: 1}
    trail.close()


def test_two_tenants_on_one_database_see_only_their_own(database_url: str,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setenv("EXACTMC_DATABASE_URL", database_url)
    for tenant in ("acme", "bolt"):
        monkeypatch.setenv("EXACTMC_TENANT", tenant)
        AuditTrail(None, tenant).record(*_decisions(tenant))
    for tenant in ("acme", "bolt"):
        monkeypatch.setenv("EXACTMC_TENANT", tenant)
        assert {r["run_id"] for r in AuditTrail("", "inspect").entries()} == {tenant}
    assert not (tmp_path / "sys").exists()


def test_default_is_a_file_under_meltano_sys_dir(tmp_path: Path) -> None:
    properties = TargetExactOnline.config_jsonschema["properties"]
    assert "default" not in properties["audit_store_url"]
    AuditTrail(None, "run").record(*_decisions("ann"))
    assert (tmp_path / "sys" / "target-exactonline" / "audit.sqlite").exists()


def test_a_run_against_the_sandbox_audits_on_postgresql(exact_sandbox: Any, postgres_url: str,
                                                        tmp_path: Path) -> None:
    account = exact_sandbox.rows("Accounts", 101)[0]
    contact = exact_sandbox.create("Contacts", {"Division": 101, "Account": account["ID"],
                                                "LastName": "Opt-out",
                                                "Email": "pg@example.com"})
    config = base_config(exact_sandbox, tmp_path, divisions=[101], write_exclusions=True,
                         audit_store_url=postgres_url)
    changed = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    run_target(config, stream("mailing_exclusions", [
        {"email": "pg@example.com", "status": "unsubscribed", "changed_at": changed,
         "source": "poll", "list_id": "demo"}]))
    [row] = audit_rows(config, outcome=WRITTEN)
    assert row["entity_key"] == contact["ID"] and row["division"] == 101
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM exactmc__target_exactonline."
                                    "exact_audit WHERE outcome = 'written'")).scalar() == 1
    engine.dispose()
    assert not (tmp_path / "audit.sqlite").exists()
