"""The webhook inboxes' database: deliveries the webhook service received, for the taps to read.

Behind the one database URL (component `inbox`): a SQLite file by default
(`$MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite`), PostgreSQL for a fleet, where each tenant has
its own schema, so the service and the jobs may run on different machines.

- `exact_webhook_inbox`: keys Exact announced, read by tap-exactonline (`sync_scope
  pending_webhooks`) and cleared by the run that polled them.
- `mailchimp_webhook_inbox`: Mailchimp list events, read by tap-mailchimp, which trims what is
  older than its (committed) bookmarks.
- `webhook_seen_keys`: the idempotency keys of every delivery recorded: a unique constraint makes
  a repeat a no-op (after a restart or a cleared inbox too); only the newest `seen_limit` count.

A delivery is one transaction (its key and its entry together, committed, and on SQLite synced
to disk, before the receiver answers 200); nothing is locked between deliveries.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from secret_store.database import (
    current_tenant,
    default_sqlite_path,
    engine_for,
    is_shared,
    store_url,
)

COMPONENT = "inbox"
EXACT, MAILCHIMP = "exact", "mailchimp"
SEEN_LIMIT = 20_000  # Exact re-sends within hours, never after tens of thousands of events
TRIM_EVERY = 100  # deliveries between two trims of the seen keys
LOCK_WAIT_SECONDS = 10  # a delivery waits this long for a writer, then gets 503 (not pinned)
_SQLITE_MAGIC = b"SQLite format 3\x00"

metadata = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: the rowid itself
exact_table = sa.Table(
    "exact_webhook_inbox", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.Double(), nullable=False),  # epoch seconds, the database's clock
    sa.Column("entry", sa.Text(), nullable=False),  # JSON: Topic, Division, Action, Key, ...
)
mailchimp_table = sa.Table(
    "mailchimp_webhook_inbox", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("list_id", sa.Text()),
    sa.Column("type", sa.Text()),
    sa.Column("fired_at", sa.Text()),  # ISO-8601 UTC `...+00:00`, compared as text
    sa.Column("entry", sa.Text(), nullable=False),
    sa.Index("mailchimp_webhook_inbox_list_fired", "list_id", "fired_at"),
)
seen_table = sa.Table(
    "webhook_seen_keys", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("inbox", sa.Text(), nullable=False),
    sa.Column("key", sa.Text(), nullable=False),
    sa.UniqueConstraint("inbox", "key", name="webhook_seen_keys_unique"),
)

_ready: weakref.WeakSet[sa.Engine] = weakref.WeakSet()  # engines with tables and listeners
_preparing = threading.Lock()


class InboxError(ValueError):
    """The inbox's database cannot be used as given."""


def inbox_url(setting: str | None = None) -> str:
    """The inbox's URL: its setting (URL or file), else `EXACTMC_DATABASE_URL`, else the file
    under Meltano's system directory, which the service and the taps of one project share."""
    return store_url(setting, default_sqlite_path("webhooks", "inbox.sqlite"))


def utc_iso(text: Any) -> str | None:
    """`2026-11-27 10:00:00`, `...Z` or `...+01:00` as `2026-11-27T10:00:00+00:00`, else None."""
    try:
        moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _sqlite_path(url: str) -> Path | None:
    """The file of a store's own SQLite URL (a shared URL's file is named per tenant)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or is_shared(url):
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


class InboxDatabase:
    """Both inboxes and their seen keys at one URL, in the current tenant's namespace."""

    def __init__(self, url: str, seen_limit: int = SEEN_LIMIT, tenant: str | None = None) -> None:
        self.url = url
        self.seen_limit = seen_limit
        # Fixed when opened: a long-lived service keeps writing where it started.
        self.tenant = tenant or current_tenant()

    def __repr__(self) -> str:
        return f"InboxDatabase({sa.engine.make_url(self.url).render_as_string(hide_password=True)})"

    def missing(self) -> bool:
        """A SQLite file never written: readers see an empty inbox and create nothing."""
        path = _sqlite_path(self.url)
        return path is not None and not path.exists()

    @property
    def engine(self) -> sa.Engine:
        engine = engine_for(self.url, COMPONENT, self.tenant, use_current_tenant=False)
        if engine not in _ready:
            with _preparing:  # the receiver's threads may all arrive first at once
                if engine not in _ready:
                    self._prepare(engine)
                    _ready.add(engine)
        return engine

    def _prepare(self, engine: sa.Engine) -> None:
        if engine.dialect.name == "sqlite":
            path = Path(engine.url.database or "")
            if engine.url.database and engine.url.database != ":memory:":
                self._own_file(path)

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection, _record) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA synchronous=FULL")  # synced at commit: before the 200
                cursor.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_SECONDS * 1000)}")
                cursor.close()
        else:
            @sa.event.listens_for(engine, "connect")
            def _lock_wait(dbapi_connection, _record) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute(f"SET lock_timeout = {int(LOCK_WAIT_SECONDS * 1000)}")
                cursor.close()
                dbapi_connection.commit()

            engine.dispose()  # pooled connections predate the listener
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":  # two processes creating the tables at once
                connection.execute(sa.text(
                    "SELECT pg_advisory_xact_lock(hashtext('exactmc-inbox-tables'))"))
            else:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")  # readers never block it
            for table in metadata.sorted_tables:
                connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))

    @staticmethod
    def _own_file(path: Path) -> None:
        """Create the file 0600 (SQLite gives its -wal/-shm files the same mode); refuse an
        older version's JSONL inbox with what to do instead of "file is not a database"."""
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        with path.open("rb") as handle:
            head = handle.read(16)
        if head and head != _SQLITE_MAGIC:
            raise InboxError(
                f"{path} is not a SQLite database (a JSONL inbox of an older version?): point "
                "the inbox setting at a new file or leave it unset (the default is "
                "$MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite); what the old file lists is "
                "covered by the next scheduled run.")

    def _insert(self, table: sa.Table) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # --- writing (the webhook service) ---

    def record(self, inbox: str, key: str, table: sa.Table, values: dict[str, Any]) -> bool:
        """Insert `values` into `table` unless `key` was recorded before; False for a repeat.

        One transaction: a kill leaves both or neither, and a repeat is refused by the unique
        constraint, so two receivers (threads, processes or machines) record it once.
        """
        engine = self.engine
        seen = self._insert(seen_table).values(inbox=inbox, key=key)
        seen = seen.on_conflict_do_nothing(index_elements=["inbox", "key"])
        with engine.begin() as connection:
            new_id = connection.execute(seen.returning(seen_table.c.id)).scalar()
            if new_id is None:
                return False
            if table is exact_table:
                values = {**values, "received_at": self._now(connection)}
            connection.execute(sa.insert(table).values(**values))
            if new_id % min(TRIM_EVERY, self.seen_limit) == 0:
                connection.execute(sa.delete(seen_table).where(
                    seen_table.c.id <= new_id - self.seen_limit))
        return True

    def add_exact(self, entry: dict[str, Any], key: str) -> bool:
        return self.record(EXACT, key, exact_table, {"entry": json.dumps(entry)})

    def add_mailchimp(self, entry: dict[str, Any], key: str) -> bool:
        data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
        list_id = entry.get("list_id") or data.get("list_id")
        return self.record(MAILCHIMP, key, mailchimp_table, {
            "list_id": list_id if isinstance(list_id, str) else None,
            "type": entry.get("type") if isinstance(entry.get("type"), str) else None,
            "fired_at": utc_iso(entry.get("fired_at")),
            "entry": json.dumps(entry),
        })

    def seen_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(
                seen_table)).scalar_one())

    # --- the Exact inbox (tap-exactonline) ---

    def now(self) -> float:
        """The database's clock (epoch seconds): the one clock `received_at` is written in, so
        a run on another machine compares its start with the entries' times without skew."""
        if self.missing():
            return time.time()
        with self.engine.connect() as connection:
            return self._now(connection)

    @staticmethod
    def _now(connection: sa.Connection) -> float:
        if connection.dialect.name == "postgresql":
            return float(connection.execute(sa.text(
                "SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
        return time.time()  # SQLite is a local file: this machine's clock is its clock

    def exact_entries(self) -> list[dict[str, Any]]:
        """The pending entries, oldest first, each with its `received_at`."""
        if self.missing():
            return []
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(
                exact_table.c.entry, exact_table.c.received_at).order_by(exact_table.c.id))
            return [{**json.loads(entry), "received_at": at} for entry, at in rows]

    def clear_exact(self, moment: float, polled: Callable[[dict[str, Any]], bool]) -> int:
        """Delete the entries received before `moment` that `polled` says a run covered."""
        if self.missing():
            return 0
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(exact_table.c.id, exact_table.c.entry).where(
                exact_table.c.received_at < moment)).all()
        covered = [row_id for row_id, entry in rows if polled(json.loads(entry))]
        # By id, in a transaction of its own: entries that arrived meanwhile are untouched.
        return self._delete_ids(exact_table, covered)

    def _delete_ids(self, table: sa.Table, ids: list[int]) -> int:
        if not ids:
            return 0
        with self.engine.begin() as connection:
            for start in range(0, len(ids), 500):
                connection.execute(sa.delete(table).where(table.c.id.in_(ids[start:start + 500])))
        return len(ids)

    # --- the Mailchimp inbox (tap-mailchimp) ---

    def mailchimp_entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first."""
        if self.missing():
            return []
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(mailchimp_table.c.entry).order_by(mailchimp_table.c.id))
            return [json.loads(entry) for (entry,) in rows]

    def trim_mailchimp(self, list_ids: Iterable[str | None], types: Iterable[str] | None,
                       before: str) -> int:
        """Delete the events of these lists (None: events naming no list) and types (None:
        any) fired before `before` (ISO UTC): a reader whose bookmark is there never reads
        them again."""
        if self.missing():
            return 0
        lists = list(list_ids)
        named = [x for x in lists if x is not None]
        which = mailchimp_table.c.list_id.in_(named)
        if None in lists:
            which = sa.or_(which, mailchimp_table.c.list_id.is_(None))
        where = [which, mailchimp_table.c.fired_at < utc_iso(before)]
        if types is not None:
            where.append(mailchimp_table.c.type.in_(list(types)))
        with self.engine.begin() as connection:
            return int(connection.execute(sa.delete(mailchimp_table).where(*where)).rowcount)
