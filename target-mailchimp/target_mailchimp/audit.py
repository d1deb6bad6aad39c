"""The audit trail (every write and its outcome) and the little memory the target keeps.

SQLite (the default file) or PostgreSQL (a fleet's one database, a schema per tenant):
audit_db.py opens it. Nothing secret is stored: rows hold record keys, relative API paths,
Mailchimp's short answer and, for failed writes only, the payload needed to replay them.

Text columns that hold outside values have no length: PostgreSQL enforces one (SQLite never
did), and a long key or path must not fail a run.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from target_mailchimp.audit_db import (
    audit_url,
    chunks,
    execute_many,
    insert_many,
    open_tables,
    upsert,
)
from target_mailchimp.client import dumps

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
SHORT = 500
MAX_KEY = 255  # record keys kept in the trail (as before PostgreSQL: older rows are this long)
QUERY_CHUNK = 500  # keys per IN (...) query: well under every database's parameter limit

metadata = sa.MetaData()

writes = sa.Table(
    "audit_writes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stream", sa.String, nullable=False),
    sa.Column("record_key", sa.String, nullable=False, index=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("response", sa.Text),
    # How to send the write again (failed writes only); the path is relative to /3.0.
    sa.Column("method", sa.String(8)),
    sa.Column("path", sa.Text),
    sa.Column("payload", sa.Text),
    sa.Column("replayed_at", sa.DateTime(timezone=True)),
    sa.Column("replay_outcome", sa.String(16)),
    sa.Column("replay_response", sa.Text),
)

# Outcomes are indexed only where they are not ok (issue 9): nearly every write succeeds and
# updated an index that only the searches for failed writes use. Those searches name the
# condition literally (NOT_OK), so SQLite's planner sees that the index covers them.
NOT_OK = writes.c.outcome != sa.literal_column(f"'{OK}'")
NOT_OK_INDEX = sa.Index("ix_audit_writes_not_ok", writes.c.outcome,
                        sqlite_where=NOT_OK, postgresql_where=NOT_OK)
OLD_OUTCOME_INDEX = "ix_audit_writes_outcome"  # on every row: dropped when a trail is opened

# How often each failed write was sent again (automatically or by hand). A table of its own, so
# audit databases made before healing existed need no migration.
write_attempts = sa.Table(
    "audit_write_attempts",
    metadata,
    sa.Column("write_id", sa.Integer, primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
)

# A deletion and an upsert of the same object supersede each other (deletions' keys are
# "<entity>/<key>"): replaying an older upsert after a deletion would bring the object back.
ENTITY_OF_STREAM = {"members": "member", "customers": "customer", "products": "product",
                    "orders": "order"}
STREAM_OF_ENTITY = {entity: stream for stream, entity in ENTITY_OF_STREAM.items()}

# last_changed values Mailchimp gave our own writes, so they are not mistaken for edits made
# in Mailchimp; also tells us which members already exist. `pending_since` is set just before
# a write is sent and cleared once its outcome is known: after a kill, the next run reads the
# members changed since then back and takes those changes as ours (own_writes.py).
member_writes = sa.Table(
    "member_writes",
    metadata,
    sa.Column("list_id", sa.String, primary_key=True),
    sa.Column("email", sa.String, primary_key=True),
    sa.Column("last_changed", sa.String),
    sa.Column("pending_since", sa.String),
)


MEMBER_COLUMNS = ("list_id", "email", "last_changed", "pending_since")
MEMBER_KEY = ("list_id", "email")


@dataclass(frozen=True)
class OwnWrite:
    last_changed: str | None
    pending_since: str | None

# Stores this target set `is_syncing: true` on and has not yet set back: written before the
# PATCH, deleted after the PATCH to false. A run that dies in between leaves the row, so the
# next run (whatever its streams) turns Mailchimp's automations back on.
syncing_stores = sa.Table(
    "syncing_stores",
    metadata,
    sa.Column("store_id", sa.String, primary_key=True),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)

# tag_key -> static segment id, so a renamed tag is found again.
tag_segments = sa.Table(
    "tag_segments",
    metadata,
    sa.Column("list_id", sa.String, primary_key=True),
    sa.Column("tag_key", sa.String, primary_key=True),
    sa.Column("segment_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String, nullable=False),
)


@dataclass
class AuditEntry:
    stream: str
    record_key: str
    operation: str
    outcome: str
    reason: str | None = None
    response: str | None = None
    method: str | None = None
    path: str | None = None
    payload: Any = None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def as_utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """In UTC: SQLite hands timezone-aware columns back naive (they were stored as UTC),
    PostgreSQL in the session's time zone."""
    if value is None:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def _short(text: str | None) -> str | None:
    return text if text is None or len(text) <= SHORT else text[: SHORT - 1] + "…"


# The columns `record` fills, in its rows' order.
TRAIL_COLUMNS = ("run_id", "at", "stream", "record_key", "operation", "outcome", "reason",
                 "response", "method", "path", "payload")


def _payload(payload: Any) -> str | None:
    """A failed write's payload as JSON, to send it again (ok rows keep none)."""
    return None if payload is None else dumps(payload)


def default_audit_url() -> str:
    """The URL without an `audit_store_url` setting (the fleet's database, or the file)."""
    return audit_url(None)


class AuditStore:
    def __init__(self, url: str | None, run_id: str,
                 clock: Callable[[], datetime.datetime] = _now) -> None:
        """`url`: the `audit_store_url` setting; None or empty resolves the default."""
        self.run_id = run_id
        # Injectable so tests can move time between runs (backoff) without sleeping.
        self.clock = clock
        self.url = audit_url(url)
        self.engine = open_tables(self.url, metadata)
        self._migrate()

    def _migrate(self) -> None:
        """Trails made before issue 9 indexed every outcome: that index becomes NOT_OK_INDEX."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # as open_tables: one process at a time
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(current_schema()))"))
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {OLD_OUTCOME_INDEX}")
            NOT_OK_INDEX.create(conn, checkfirst=True)

    # --- the trail -------------------------------------------------------------------------

    def record(self, entries: Iterable[AuditEntry]) -> None:
        at = self.clock()
        rows = [(self.run_id, at, e.stream, str(e.record_key)[:MAX_KEY], e.operation, e.outcome,
                 _short(e.reason), _short(e.response),
                 *((e.method, e.path, _payload(e.payload)) if e.outcome == FAILED
                   else (None, None, None)))
                for e in entries]
        if rows:
            with self.engine.begin() as conn:
                insert_many(conn, writes, TRAIL_COLUMNS, rows)

    def entries(self, **filters: Any) -> list[dict[str, Any]]:
        query = sa.select(writes).order_by(writes.c.id)
        for name, value in filters.items():
            query = query.where(writes.c[name] == value)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def latest_reasons(self, stream: str, keys: Iterable[str]) -> dict[str, str | None]:
        """Per key, the reason of the newest audit row of `stream` (None: a row without one)."""
        wanted = list(dict.fromkeys(keys))
        latest: dict[str, str | None] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), QUERY_CHUNK):
                chunk = wanted[start : start + QUERY_CHUNK]
                rows = conn.execute(sa.select(writes.c.record_key, writes.c.reason)
                                    .where(writes.c.stream == stream,
                                           writes.c.record_key.in_(chunk))
                                    .order_by(writes.c.id))
                latest.update({key: reason for key, reason in rows})
        return latest

    def failed_unreplayed(self) -> Iterator[dict[str, Any]]:
        """Failed writes not yet settled: never re-sent, or re-sent and refused again.

        Each row carries `attempts` (how often it was re-sent). Rows are settled by a
        successful re-send or a skip (e.g. superseded); refusals stay open, so they are seen.
        """
        query = (
            sa.select(writes, sa.func.coalesce(write_attempts.c.attempts, 0).label("attempts"))
            .select_from(writes.outerjoin(write_attempts, write_attempts.c.write_id == writes.c.id))
            .where(writes.c.outcome == FAILED, NOT_OK,
                   sa.or_(writes.c.replay_outcome.is_(None), writes.c.replay_outcome == FAILED))
            .order_by(writes.c.id)
        )
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["at"], row["replayed_at"] = as_utc(row["at"]), as_utc(row["replayed_at"])
        yield from rows

    def superseded(self, row: dict[str, Any]) -> bool:
        """Whether a later row exists for the same object (newer source data, or its deletion;
        for a deletion, the object written again)."""
        if row["record_key"] == "?":
            return False  # records without a key are not the same object as each other
        same_object = [sa.and_(writes.c.stream == row["stream"],
                               writes.c.record_key == row["record_key"])]
        if row["stream"] in ENTITY_OF_STREAM:
            same_object.append(sa.and_(
                writes.c.stream == "deletions",
                writes.c.record_key == f"{ENTITY_OF_STREAM[row['stream']]}/{row['record_key']}"))
        elif row["stream"] == "deletions" and "/" in str(row["record_key"]):
            entity, key = str(row["record_key"]).split("/", 1)
            if entity in STREAM_OF_ENTITY:
                same_object.append(sa.and_(writes.c.stream == STREAM_OF_ENTITY[entity],
                                           writes.c.record_key == key))
        query = sa.select(writes.c.id).where(sa.or_(*same_object), writes.c.id > row["id"]).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def mark_replayed(self, row_id: int, outcome: str, response: str | None) -> None:
        """Note a re-send's outcome; a refused one counts as one more attempt."""
        with self.engine.begin() as conn:
            conn.execute(
                writes.update().where(writes.c.id == row_id).values(
                    replayed_at=self.clock(), replay_outcome=outcome,
                    replay_response=_short(response)
                )
            )
            if outcome == FAILED:
                # One statement: two re-senders of one row (threads, machines) both count.
                upsert(conn, write_attempts, [{"write_id": row_id, "attempts": 1}],
                       set_={"attempts": write_attempts.c.attempts + 1})

    # --- member memory ---------------------------------------------------------------------

    def own_member_changes(self, list_id: str, emails: Iterable[str]) -> dict[str, OwnWrite]:
        """What we know of our own writes to these members (only members we ever wrote)."""
        wanted = list(set(emails))
        found: dict[str, OwnWrite] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), QUERY_CHUNK):
                query = sa.select(member_writes).where(
                    member_writes.c.list_id == list_id,
                    member_writes.c.email.in_(wanted[start : start + QUERY_CHUNK]),
                )
                found.update({row.email: OwnWrite(row.last_changed, row.pending_since)
                              for row in conn.execute(query)})
        return found

    def pending_members(self, list_id: str) -> dict[str, str]:
        """email -> pending_since of writes whose outcome was never recorded."""
        query = sa.select(member_writes.c.email, member_writes.c.pending_since).where(
            member_writes.c.list_id == list_id, member_writes.c.pending_since.is_not(None))
        with self.engine.connect() as conn:
            return {row.email: row.pending_since for row in conn.execute(query)}

    @staticmethod
    def _delete_members(conn: sa.Connection, list_id: str, emails: Iterable[str]) -> None:
        for chunk in chunks(emails, QUERY_CHUNK):
            conn.execute(member_writes.delete().where(
                member_writes.c.list_id == list_id, member_writes.c.email.in_(chunk)))

    def mark_members_pending(self, list_id: str, emails: Iterable[str], since: str) -> None:
        """Write-ahead note, made before the members are sent.

        An older note (from a run that died) is kept: its unconfirmed write may be the
        change Mailchimp now shows, and the window must still cover it. One statement merges
        it (issue 9: no read of the notes first).
        """
        rows = [(list_id, email, None, since) for email in sorted(set(emails))]  # lock order
        with self.engine.begin() as conn:
            insert_many(conn, member_writes, MEMBER_COLUMNS, rows, conflict=MEMBER_KEY,
                        keep=("pending_since",))

    def settle_members(self, list_id: str, attempted: Iterable[str],
                       confirmed: dict[str, str | None]) -> None:
        """After the writes: confirmed ones keep Mailchimp's last_changed, the rest are unmarked
        (what they knew kept); a member left knowing nothing has no row."""
        unconfirmed = sorted(set(attempted) - confirmed.keys())
        stamped = sorted(email for email, stamp in confirmed.items() if stamp is not None)
        unstamped = sorted(email for email, stamp in confirmed.items() if stamp is None)
        with self.engine.begin() as conn:
            insert_many(conn, member_writes, MEMBER_COLUMNS,
                        [(list_id, email, confirmed[email], None) for email in stamped],
                        conflict=MEMBER_KEY, update=("last_changed", "pending_since"))
            execute_many(conn, "UPDATE member_writes SET pending_since = NULL "
                               "WHERE list_id = ? AND email = ?",
                         [(list_id, email) for email in unconfirmed])
            execute_many(conn, "DELETE FROM member_writes WHERE list_id = ? AND email = ? "
                               "AND last_changed IS NULL",
                         [(list_id, email) for email in unconfirmed])
            execute_many(conn, "DELETE FROM member_writes WHERE list_id = ? AND email = ?",
                         [(list_id, email) for email in unstamped])

    def remember_member_changes(self, list_id: str, changes: dict[str, str | None]) -> None:
        self.settle_members(list_id, (), changes)

    def forget_members(self, list_id: str, emails: Iterable[str]) -> None:
        emails = list(emails)
        if emails:
            with self.engine.begin() as conn:
                self._delete_members(conn, list_id, emails)

    # --- e-commerce store syncing flag ------------------------------------------------------

    def mark_store_syncing(self, store_id: str) -> None:
        with self.engine.begin() as conn:
            upsert(conn, syncing_stores, [{"store_id": store_id, "since": self.clock()}])

    def store_left_syncing(self, store_id: str) -> bool:
        query = sa.select(syncing_stores.c.store_id).where(syncing_stores.c.store_id == store_id)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def clear_store_syncing(self, store_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(syncing_stores.delete().where(syncing_stores.c.store_id == store_id))

    # --- tag segments ----------------------------------------------------------------------

    def segment_for_tag(self, list_id: str, tag_key: str) -> tuple[int, str] | None:
        query = sa.select(tag_segments.c.segment_id, tag_segments.c.name).where(
            tag_segments.c.list_id == list_id, tag_segments.c.tag_key == tag_key
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return (row.segment_id, row.name) if row else None

    def remember_segment(self, list_id: str, tag_key: str, segment_id: int, name: str) -> None:
        with self.engine.begin() as conn:
            upsert(conn, tag_segments, [{"list_id": list_id, "tag_key": tag_key,
                                         "segment_id": segment_id, "name": name}])

    def tag_keys_of_segment(self, list_id: str, segment_id: int) -> list[str]:
        query = sa.select(tag_segments.c.tag_key).where(
            tag_segments.c.list_id == list_id, tag_segments.c.segment_id == segment_id
        )
        with self.engine.connect() as conn:
            return [row.tag_key for row in conn.execute(query)]

    def forget_segment(self, list_id: str, tag_key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(tag_segments.delete().where(
                tag_segments.c.list_id == list_id, tag_segments.c.tag_key == tag_key
            ))

    def close(self) -> None:
        self.engine.dispose()
