"""The audience as the last runs read it: members' (status, last_changed) and the span of
changes those reads covered, kept in the audit DB.

Why: the conflict check (newest wins) needs every member changed since a batch's oldest source
timestamp. A source time older than the last run (a contact's own Modified, a full refresh,
Exact's local time) made each run page through the whole audience again: 16 of an
incremental's 47 calls at 10,000 accounts. With this, a run reads only what changed since the
last run's read, and still knows of every edit made in Mailchimp before it.

Sound because the span is contiguous: every change from `covered_from` to `cursor` was seen by
a read and stored here (or is one of our own writes, in `member_writes`). A batch with a source
time before `covered_from` reads from there, as without this memory. A deletion forgets its
members (a deleted member is gone from Mailchimp's reads).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import sqlalchemy as sa

from target_mailchimp.audit import QUERY_CHUNK, as_utc, metadata
from target_mailchimp.audit_db import chunks, upsert

audience_members = sa.Table(
    "audience_members",
    metadata,
    sa.Column("list_id", sa.String, primary_key=True),
    sa.Column("email", sa.String, primary_key=True),
    sa.Column("status", sa.String),
    sa.Column("last_changed", sa.String),
)

audience_reads = sa.Table(
    "audience_reads",
    metadata,
    sa.Column("list_id", sa.String, primary_key=True),
    sa.Column("covered_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
)

Member = tuple[str | None, str | None]  # (status, last_changed)
REMEMBER_CHUNK = 2000  # rows per upsert of `remember`


class AudienceMemory:
    def __init__(self, engine: sa.engine.Engine, list_id: str) -> None:
        self.engine = engine
        self.list_id = list_id

    def span(self) -> tuple[datetime.datetime, datetime.datetime] | None:
        """(covered_from, cursor) of the reads remembered, None if none."""
        query = sa.select(audience_reads.c.covered_from, audience_reads.c.cursor).where(
            audience_reads.c.list_id == self.list_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        covered_from, cursor = as_utc(row.covered_from), as_utc(row.cursor)
        assert covered_from is not None and cursor is not None
        return covered_from, cursor

    def members(self) -> dict[str, Member]:
        query = sa.select(audience_members.c.email, audience_members.c.status,
                          audience_members.c.last_changed).where(
            audience_members.c.list_id == self.list_id)
        with self.engine.connect() as conn:
            return {row.email: (row.status, row.last_changed) for row in conn.execute(query)}

    def remember(self, members: dict[str, Member], covered_from: datetime.datetime,
                 cursor: datetime.datetime) -> None:
        """Store what a read saw and the span now covered, in one transaction (a run killed
        in between leaves the old span, which is still true)."""
        with self.engine.begin() as conn:
            # A chunk of rows at a time (issue 9: the whole audience as row dicts at once was
            # the target's peak at 100k members); in key order overall, as `upsert` wants.
            for chunk in chunks(sorted(members), REMEMBER_CHUNK):
                upsert(conn, audience_members, [
                    {"list_id": self.list_id, "email": email, "status": members[email][0],
                     "last_changed": members[email][1]} for email in chunk])
            upsert(conn, audience_reads, [
                {"list_id": self.list_id, "covered_from": covered_from, "cursor": cursor}])

    def _delete(self, conn: sa.Connection, emails: list[str]) -> None:
        for chunk in chunks(emails, QUERY_CHUNK):
            conn.execute(audience_members.delete().where(
                audience_members.c.list_id == self.list_id,
                audience_members.c.email.in_(chunk)))

    def forget(self, emails: Iterable[str]) -> None:
        emails = list(emails)
        with self.engine.begin() as conn:
            self._delete(conn, emails)
