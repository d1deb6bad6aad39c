"""The mapper's database: where it is, one connection to it, and the lock of one run at a time.

Everything the mapper keeps (lookup store, ledger, rejections) is one database behind one
SQLAlchemy URL (`secret_store.database`): the `store_url` setting (a URL or a plain file path;
`lookup_store_path` is the older name), else the fleet's `EXACTMC_DATABASE_URL`, else the SQLite
file `$MELTANO_SYS_DIR_ROOT/mapper-exact-mailchimp/lookup.sqlite` (per tenant: the fleet runner
points MELTANO_SYS_DIR_ROOT at the tenant's directory). On PostgreSQL the tables live in the
schema `<tenant>__<namespace>`.

Speed (issue 9): the stores run thousands of small statements per flush, so they use the
engine's DBAPI connection directly (SQLAlchemy's per-statement layer would cost more CPU than
SQLite itself), written once with `?` placeholders and portable SQL (`ON CONFLICT`, which
SQLite >= 3.24 and PostgreSQL both accept); `Database` turns them into psycopg's `%s`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from filelock import FileLock, Timeout
from secret_store.database import default_sqlite_path, engine_for, store_url

PLUGIN_DIR = "mapper-exact-mailchimp"
DEFAULT_NAMESPACE = "mapper"
# SQLite's page cache (default 2 MB): the recompute reads rows back; without it every page
# read is a system call. Bounded, so memory stays flat as the store grows.
CACHE_KIB = 32 * 1024
LOCK_POLL_SECONDS = 0.1


def default_file(namespace: str = DEFAULT_NAMESPACE) -> Path:
    """The SQLite file used when no URL is set; another namespace (the reconcile job's
    `mapper_reconcile`) gets its own file beside it (`reconcile-lookup.sqlite`)."""
    name = "lookup.sqlite" if namespace == DEFAULT_NAMESPACE else (
        f"{namespace.removeprefix(DEFAULT_NAMESPACE + '_')}-lookup.sqlite")
    return default_sqlite_path(PLUGIN_DIR, name)


def resolve_url(setting: str | None, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The store's URL: `setting` (URL or path), else EXACTMC_DATABASE_URL, else the file."""
    return store_url(setting or None, default_file(namespace))


class Database:
    """One DBAPI connection of the store's engine; statements use `?` on every backend."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._pooled = engine.raw_connection()
        self.raw: Any = self._pooled.driver_connection  # no proxy on the hot path
        self._sql: dict[str, str] = {}
        if self.is_sqlite:
            self.raw.execute("PRAGMA journal_mode=WAL")
            self.raw.execute("PRAGMA synchronous=FULL")
            self.raw.execute(f"PRAGMA cache_size=-{CACHE_KIB}")

    def sql(self, statement: str) -> str:
        if self.is_sqlite:
            return statement
        found = self._sql.get(statement)
        if found is None:  # our statements hold no literal `?` or `%`
            found = self._sql[statement] = statement.replace("?", "%s")
        return found

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; the DBAPI cursor (iterable, `fetchone`, `fetchall`)."""
        return self.raw.execute(self.sql(statement), params)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        if self.is_sqlite:
            self.raw.executemany(statement, rows)
        else:
            with self.raw.cursor() as cursor:  # psycopg pipelines an executemany
                cursor.executemany(self.sql(statement), rows)

    def script(self, ddl: str) -> None:
        """Create tables: `{serial}` is an auto-numbered primary key in either dialect."""
        ddl = ddl.replace("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT" if self.is_sqlite
                          else "BIGSERIAL PRIMARY KEY")
        if self.is_sqlite:
            self.raw.executescript(ddl)
            return
        for statement in filter(None, (s.strip() for s in ddl.split(";"))):
            self.raw.execute(statement)
        self.raw.commit()

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self._pooled.close()


def connect(target: str | Path, namespace: str = DEFAULT_NAMESPACE) -> Database:
    """The store at `target`: a URL, or a plain SQLite file path."""
    return Database(engine_for(resolve_url(str(target), namespace), namespace))


def open_store(setting: str | None, namespace: str = DEFAULT_NAMESPACE) -> Database:
    """The store the settings name (see the module doc for the resolution)."""
    return Database(engine_for(resolve_url(setting, namespace), namespace))


class StoreBusyError(RuntimeError):
    """Another run holds the store: two runs must not interleave their outputs."""


class StoreLock:
    """One mapper run per store: a file lock beside a SQLite file; on PostgreSQL a session
    advisory lock on a connection of its own, which any end of the process (a kill included)
    releases with the connection, on whichever machine the other run is."""

    def __init__(self, engine: sa.Engine, timeout: float) -> None:
        self._file: FileLock | None = None
        self._connection: Any = None
        where = engine.url.render_as_string(hide_password=True)
        if engine.dialect.name == "sqlite":
            self._file = FileLock(f"{engine.url.database}.lock")
            try:
                self._file.acquire(timeout=timeout)
            except Timeout as error:
                raise self._busy(where, timeout) from error
            return
        pooled = engine.raw_connection()
        raw = self._connection = pooled.driver_connection
        pooled.detach()  # its own session, never handed back to the pool
        raw.autocommit = True  # no transaction left open while the run lasts
        key = "exactmc-mapper-run:" + raw.execute("SELECT current_schema()").fetchone()[0]
        deadline = time.monotonic() + timeout
        while not raw.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                self.release()
                raise self._busy(where, timeout)
            time.sleep(LOCK_POLL_SECONDS)

    @staticmethod
    def _busy(where: str, timeout: float) -> StoreBusyError:
        return StoreBusyError(f"Lookup store {where} is in use by another run "
                              f"(waited {timeout:g} s).")

    @property
    def is_locked(self) -> bool:
        return self._connection is not None or bool(self._file and self._file.is_locked)

    def release(self) -> None:
        if self._file is not None and self._file.is_locked:
            self._file.release()
        if self._connection is not None:
            self._connection.close()  # ends the session: the advisory lock goes with it
            self._connection = None
