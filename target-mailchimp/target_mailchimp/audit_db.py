"""Where the audit database is and how it is opened, on SQLite and on PostgreSQL alike.

The URL is the `audit_store_url` setting, else the fleet's `EXACTMC_DATABASE_URL` (the tenant's
own schema there), else `$MELTANO_SYS_DIR_ROOT/target-mailchimp/audit.sqlite` (per tenant, as
the fleet runner points that directory at the tenant's own). tap-mailchimp resolves the same
URL to read the forward flow's own opt-outs, so the two never need to be kept equal by hand.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from secret_store.database import (
    default_sqlite_path,
    engine_for,
    store_exists,
    store_place,
    store_url,
)
from sqlalchemy.dialects import postgresql, sqlite

PLUGIN, FILE, COMPONENT = "target-mailchimp", "audit.sqlite", "target_mailchimp"


def audit_url(setting: str | None = None) -> str:
    """The audit database's URL for an `audit_store_url` setting (None or empty: the default)."""
    return store_url(setting or None, default_sqlite_path(PLUGIN, FILE))


def audit_engine(url: str) -> sa.Engine:
    """The (cached) engine of the audit database, in the current tenant's namespace."""
    return engine_for(url, COMPONENT)


def audit_exists(url: str) -> bool:
    """Whether the audit database was ever made (checked without making it)."""
    return store_exists(url, COMPONENT)


def audit_place(url: str) -> str:
    """The audit database's file or schema, for messages."""
    return store_place(url, COMPONENT)


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
    keys = [column.name for column in table.primary_key.columns]
    # In key order: two writers locking the same keys in the same order cannot deadlock.
    try:
        ordered = sorted(rows, key=_key_order(table, keys))
    except TypeError:  # a text key given as a number somewhere: compare as text
        ordered = sorted(rows, key=lambda row: tuple(str(row[key]) for key in keys))
    if set_ is None:  # the common case, many rows: straight to the driver
        columns = [column.name for column in table.columns]  # one missing from a row: NULL
        update = [name for name in columns if name not in keys]
        insert_many(conn, table, columns, [tuple(map(row.get, columns)) for row in ordered],
                    conflict=keys, update=update)
        return
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
    statement = dialect.insert(table)
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=set_), ordered)


def _key_order(table: sa.Table, keys: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    """Rows ordered by their key values as text (the same order in every writer)."""
    if all(isinstance(table.c[key].type, sa.String) for key in keys):
        return operator.itemgetter(*keys)  # already text: no str() per value
    return lambda row: tuple(str(row[key]) for key in keys)


def insert_many(conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                rows: Sequence[Sequence[Any]], *, conflict: Sequence[str] = (),
                update: Sequence[str] = (), keep: Sequence[str] = ()) -> None:
    """INSERT of `rows` (tuples in `columns` order) through the driver's own executemany.

    Why: SQLAlchemy's per-row parameter building (a dict per row, compiled per call) was a
    fifth of the target's CPU on a first sync. The SQL is the same on SQLite and PostgreSQL;
    values go through the column types' own bind processors, so what is stored is what
    SQLAlchemy stored (SQLite's date-time text, for one). `conflict`/`update`: ON CONFLICT
    (conflict) DO UPDATE SET each `update` column from the new row, each `keep` column only
    where the stored one is NULL (nothing: DO NOTHING).
    """
    if not rows:
        return
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    # Identifiers from our own table definitions, quoted; every value is a parameter.
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
           f"VALUES ({', '.join([mark] * len(columns))})")
    if conflict:
        sets = ", ".join([*(f"{quote(c)} = excluded.{quote(c)}" for c in update),
                          *(f"{quote(c)} = COALESCE({quote(table.name)}.{quote(c)}, "
                            f"excluded.{quote(c)})" for c in keep)])
        sql += f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) " + (
            f"DO UPDATE SET {sets}" if sets else "DO NOTHING")
    processors = [(i, table.c[name].type._cached_bind_processor(dialect))
                  for i, name in enumerate(columns)]
    processors = [(i, process) for i, process in processors if process is not None]
    if processors:
        rows = _processed(rows, processors)
    conn.exec_driver_sql(sql, list(rows))


def execute_many(conn: sa.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """One statement with `?` marks for each row, through the driver's executemany (marks
    made the dialect's own; SQL from our own code, values all parameters)."""
    if rows:
        if conn.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        conn.exec_driver_sql(sql, list(rows))


def _processed(rows: Sequence[Sequence[Any]],
               processors: list[tuple[int, Callable[[Any], Any]]]) -> list[tuple[Any, ...]]:
    """Rows with the typed columns converted; each distinct value once (a batch's rows
    mostly share their time stamp)."""
    done: list[dict[Any, Any]] = [{} for _ in processors]
    out = []
    for row in rows:
        values = list(row)
        for (i, process), seen in zip(processors, done, strict=True):
            value = values[i]
            if value is not None:
                try:
                    values[i] = seen[value]
                except KeyError:
                    values[i] = seen[value] = process(value)
                except TypeError:  # unhashable
                    values[i] = process(value)
        out.append(tuple(values))
    return out


def chunks(values: Iterable[str], size: int) -> Iterable[list[str]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]
