"""Where the audit database is and how it is opened, on SQLite and on PostgreSQL alike.

The URL is the `audit_store_url` setting, else the fleet's `EXACTMC_DATABASE_URL` (the tenant's
own schema there), else `$MELTANO_SYS_DIR_ROOT/target-mailchimp/audit.sqlite` (per tenant, as
the fleet runner points that directory at the tenant's own). tap-mailchimp resolves the same
URL to read the forward flow's own opt-outs, so the two never need to be kept equal by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from secret_store.database import default_sqlite_path, engine_for, store_url
from sqlalchemy.dialects import postgresql, sqlite

PLUGIN, FILE, COMPONENT = "target-mailchimp", "audit.sqlite", "target_mailchimp"


def audit_url(setting: str | None = None) -> str:
    """The audit database's URL for an `audit_store_url` setting (None or empty: the default)."""
    return store_url(setting or None, default_sqlite_path(PLUGIN, FILE))


def audit_engine(url: str) -> sa.Engine:
    """The (cached) engine of the audit database, in the current tenant's namespace."""
    return engine_for(url, COMPONENT)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite audit database lives in (a shared URL is split per tenant), else None."""
    engine = audit_engine(url)
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return None
    return Path(database).expanduser()


def open_tables(url: str, *metadatas: sa.MetaData) -> sa.Engine:
    """The audit engine with these tables made (idempotent, safe with concurrent processes)."""
    engine = audit_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes creating the same tables at once collide on PostgreSQL's catalog.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(current_schema()))"))
        for metadata in metadatas:
            metadata.create_all(conn)
    return engine


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]],
           set_: Mapping[str, Any] | None = None) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE, as one executemany.

    Why not delete + insert: two writers of the same keys on PostgreSQL would both delete
    nothing and one insert would fail on the key. `set_` overrides what a conflict sets (by
    default every other column from the row).
    """
    if not rows:
        return
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
    statement = dialect.insert(table)
    keys = [column.name for column in table.primary_key.columns]
    if set_ is None:
        set_ = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    # In key order: two writers locking the same keys in the same order cannot deadlock.
    ordered = sorted(rows, key=lambda row: tuple(str(row[key]) for key in keys))
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=set_), ordered)


def chunks(values: Iterable[str], size: int) -> Iterable[list[str]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]
