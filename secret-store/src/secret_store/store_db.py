"""The store's database backend: a row per document behind the one database URL.

Tables (component `secrets`, shared by name: the names carry the tenant already):
`secrets(name PK, token, updated_at)` holds the Fernet ciphertext; `secret_locks(name PK)` holds
one row per lockable name. `lock()` keeps `SELECT ... FOR UPDATE` on that row in a transaction of
its own connection for the context's duration: two machines never refresh one Exact token at
once, and the server ends the transaction (dropping the lock) when the holder dies, SIGKILL
included. The lock row is not the document row, so the writes inside the context (each
committed on its own, durable at return: a rotated refresh token is never lost) do not wait for
the lock's transaction. On SQLite the lock is a file lock beside the database file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from secret_store.database import engine_for
from secret_store.store_files import LockTimeout, file_lock

COMPONENT = "secrets"
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout expires

metadata = sa.MetaData()
secrets_table = sa.Table(
    "secrets", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("token", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
locks_table = sa.Table("secret_locks", metadata, sa.Column("name", sa.Text, primary_key=True))

_ready: set[str] = set()  # databases whose tables exist (this process made sure once)


class DatabaseUnavailable(Exception):
    """The database could not be used; the message names no password."""


def safe_label(url: str) -> str:
    """The URL as shown to people: never its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid database URL>"


class DatabaseBackend:
    def __init__(self, url: str) -> None:
        self.url = url
        self.label = safe_label(url)
        backend = make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise DatabaseUnavailable(f"Unsupported secret-store database {self.label}: "
                                      "use sqlite:/// or postgresql://.")
        self.is_postgres = backend == "postgresql"

    @property
    def engine(self) -> sa.Engine:
        engine = engine_for(self.url, COMPONENT, use_current_tenant=False)
        where = engine.url.render_as_string(hide_password=False)
        if where not in _ready:
            with engine.begin() as connection:
                if self.is_postgres:  # two processes creating the tables at once
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:n))"),
                                       {"n": "exactmc-secrets-ddl"})
                for table in metadata.sorted_tables:  # IF NOT EXISTS: processes may race
                    connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
            _ready.add(where)
        return engine

    def read(self, name: str) -> bytes | None:
        with self.engine.connect() as connection:
            token = connection.execute(
                sa.select(secrets_table.c.token).where(secrets_table.c.name == name)
            ).scalar_one_or_none()
        return token.encode() if token is not None else None

    def write(self, name: str, token: bytes) -> None:
        """Insert or replace, committed before returning."""
        insert = (postgresql if self.is_postgres else sqlite).insert
        values = {"name": name, "token": token.decode(), "updated_at": datetime.now(timezone.utc)}
        statement = insert(secrets_table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"token": statement.excluded.token, "updated_at": statement.excluded.updated_at})
        with self.engine.begin() as connection:
            connection.execute(statement)

    @contextmanager
    def lock(self, name: str, timeout: float) -> Iterator[None]:
        if not self.is_postgres:
            database = self.engine.url.database
            if not database or database == ":memory:":
                yield  # one process only: the store's thread lock is enough
                return
            with file_lock(Path(f"{database}.{name}.lock"), timeout):
                yield
            return
        started = time.monotonic()
        engine = self.engine
        with engine.begin() as connection:  # the row to lock, committed on its own
            connection.execute(postgresql.insert(locks_table).values(name=name)
                               .on_conflict_do_nothing(index_elements=["name"]))
        connection = engine.connect()
        try:
            with connection.begin():
                remaining = max(timeout - (time.monotonic() - started), 0.001)
                connection.execute(sa.text("SELECT set_config('lock_timeout', :ms, true)"),
                                   {"ms": f"{int(remaining * 1000) or 1}ms"})
                try:
                    connection.execute(sa.select(locks_table.c.name)
                                       .where(locks_table.c.name == name).with_for_update())
                except sa.exc.OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                        raise LockTimeout from None
                    raise
                yield
        finally:
            connection.close()

    def remove_prefix(self, prefix: str) -> list[str]:
        removed = []
        with self.engine.begin() as connection:
            for table in (secrets_table, locks_table):
                # substr, not LIKE: tenant names contain '_', a LIKE wildcard.
                matches = sa.func.substr(table.c.name, 1, len(prefix)) == prefix
                names = connection.execute(sa.delete(table).where(matches)
                                           .returning(table.c.name)).scalars().all()
                if table is secrets_table:
                    removed = sorted(names)
        database = self.engine.url.database
        if not self.is_postgres and database and database != ":memory:":
            for name in removed:  # their SQLite lock files
                Path(f"{database}.{name}.lock").unlink(missing_ok=True)
        return removed
