"""Issue 9 (the target's CPU): `audit_writes` indexes its outcomes only where they are not
`ok` (a partial index): the writes that succeed, nearly all, no longer update an index that
only the searches for failed writes use. Audit databases made before are migrated when they
are opened, on SQLite and PostgreSQL alike, and the searches still use the index."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from target_mailchimp.audit import FAILED, OK, AuditEntry, AuditStore

OLD_INDEX, NEW_INDEX = "ix_audit_writes_outcome", "ix_audit_writes_not_ok"


def _indexes(engine: sa.Engine) -> dict[str, str]:
    """Index name -> its definition, of audit_writes."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = "
                                        "'index' AND tbl_name = 'audit_writes'")
        else:
            rows = conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes WHERE "
                                        "tablename = 'audit_writes' AND schemaname = "
                                        "current_schema()")
        return {name: sql or "" for name, sql in rows}


def _plan(engine: sa.Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return " ".join(str(row[-1]) for row in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: say what is usable
        return " ".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + statement,
                                                                    parameters))


def test_old_trails_are_migrated_and_failed_writes_found_by_the_index(database_url: str) -> None:
    audit = AuditStore(database_url, "run-1")
    audit.record([AuditEntry("products", "p1", "upsert", FAILED, reason="400", method="PUT",
                             path="/x", payload={"id": "p1"}),
                  AuditEntry("products", "p2", "upsert", OK)])
    with audit.engine.begin() as conn:  # as the trail was made before issue 9
        conn.exec_driver_sql(f"DROP INDEX {NEW_INDEX}")
        conn.exec_driver_sql(f"CREATE INDEX {OLD_INDEX} ON audit_writes (outcome)")
    audit.close()

    audit = AuditStore(database_url, "run-2")
    indexes = _indexes(audit.engine)
    assert OLD_INDEX not in indexes
    assert "ok" in indexes[NEW_INDEX] and "WHERE" in indexes[NEW_INDEX].upper()
    statements: list[tuple[str, Any]] = []
    sa.event.listen(audit.engine, "before_cursor_execute",
                    lambda _c, _cur, statement, parameters, *_a: statements.append(
                        (statement, parameters)))
    assert [row["record_key"] for row in audit.failed_unreplayed()] == ["p1"]
    [(statement, parameters)] = [s for s in statements if "audit_writes" in s[0]]
    AuditStore(database_url, "run-3").close()  # opened again: nothing to migrate, no error
    assert NEW_INDEX in _plan(audit.engine, statement, parameters)
    audit.close()
