"""The audit trail: every decision and every write, one row each (SQLite or PostgreSQL).

The URL is the `audit_store_url` setting, else the fleet's `EXACTMC_DATABASE_URL` (schema
`<tenant>__target_exactonline`), else `$MELTANO_SYS_DIR_ROOT/target-exactonline/audit.sqlite`.
Nothing secret is stored: the record's key, the Exact entity touched, what was decided and why.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from secret_store.database import default_sqlite_path, engine_for, store_url

# Outcomes: a write Exact accepted; none needed (already equal); a finding not written (the
# setting is off, or Exact's value wins); not ours to act on; a write Exact refused.
WRITTEN, UNCHANGED, REPORTED, IGNORED, FAILED = "written", "unchanged", "reported", "ignored", \
    "failed"
SHORT = 500
PLUGIN, FILE, COMPONENT = "target-exactonline", "audit.sqlite", "target_exactonline"

metadata = sa.MetaData()

decisions = sa.Table(
    "exact_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    # No lengths on outside values: PostgreSQL enforces them (SQLite never did).
    sa.Column("stream", sa.String, nullable=False),
    sa.Column("record_key", sa.String, nullable=False, index=True),
    sa.Column("division", sa.BigInteger),
    sa.Column("entity", sa.String),
    sa.Column("entity_key", sa.String),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
)


@dataclass
class Decision:
    stream: str
    record_key: str
    operation: str
    outcome: str
    reason: str | None = None
    division: int | None = None
    entity: str | None = None
    entity_key: str | None = None


def audit_url(setting: str | None = None) -> str:
    """The audit trail's URL for an `audit_store_url` setting (None or empty: the default)."""
    return store_url(setting or None, default_sqlite_path(PLUGIN, FILE))


class AuditTrail:
    def __init__(self, url: str | None, run_id: str) -> None:
        """`url`: the `audit_store_url` setting; None or empty resolves the default."""
        self.run_id = run_id
        # A SQLite file (and its folder) is made under the target's umask (restrict_new_files):
        # 0600 from the start.
        self.engine = engine_for(audit_url(url), COMPONENT)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # concurrent creators collide in the catalog
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(current_schema()))"))
            metadata.create_all(conn)
        self.counts: dict[str, int] = {}

    def record(self, *entries: Decision) -> None:
        at = datetime.datetime.now(datetime.timezone.utc)
        rows = [{"run_id": self.run_id, "at": at, "stream": e.stream,
                 "record_key": str(e.record_key)[:320], "division": e.division,
                 "entity": e.entity, "entity_key": e.entity_key, "operation": e.operation,
                 "outcome": e.outcome, "reason": _short(e.reason)} for e in entries]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(decisions.insert(), rows)
        for e in entries:
            self.counts[e.outcome] = self.counts.get(e.outcome, 0) + 1

    def entries(self, **filters: Any) -> list[dict[str, Any]]:
        query = sa.select(decisions).order_by(decisions.c.id)
        for name, value in filters.items():
            query = query.where(decisions.c[name] == value)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def close(self) -> None:
        self.engine.dispose()


def _short(text: str | None) -> str | None:
    return text if text is None or len(text) <= SHORT else text[: SHORT - 1] + "…"
