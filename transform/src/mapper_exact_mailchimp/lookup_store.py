"""The persistent lookup store: every input row seen, what is dirty, and member candidates.

One database (`store.py`: SQLite by default, PostgreSQL for a fleet) outlives the runs, so
incremental runs can join a changed record with the unchanged ones it needs (a receivable with
last week's invoice, a new contact with its account's cost centers). Rows, dirty marks and
outputs are committed together at a flush (see `mapper.py`): a crash rolls back to the last
flush, and the tap resends from the STATE that flush forwarded.

Speed (issue 9): dirty marks are collected in memory and written with one `executemany` before
they are read or committed (`save`), tombstones are answered from a set loaded once, so a
record costs two statements (where it was, the upsert) instead of a dozen. Nothing is
committed other than at a flush, so durability is the same as one statement per mark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from .store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    stream TEXT NOT NULL, division BIGINT NOT NULL, id TEXT NOT NULL,
    parent TEXT, number TEXT, data TEXT NOT NULL,
    PRIMARY KEY (stream, division, id));
DROP INDEX IF EXISTS rows_by_parent;
DROP INDEX IF EXISTS rows_by_number;
CREATE INDEX IF NOT EXISTS rows_with_parent ON rows (stream, division, parent, id)
    WHERE parent IS NOT NULL;
CREATE INDEX IF NOT EXISTS rows_with_number ON rows (stream, division, number, id)
    WHERE number IS NOT NULL;
CREATE TABLE IF NOT EXISTS tombstones (
    stream TEXT NOT NULL, division BIGINT NOT NULL, id TEXT NOT NULL, deleted_at TEXT,
    PRIMARY KEY (stream, division, id));
CREATE TABLE IF NOT EXISTS dirty (
    kind TEXT NOT NULL, division BIGINT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (kind, division, id));
CREATE TABLE IF NOT EXISTS candidates (
    source_key TEXT PRIMARY KEY, email TEXT NOT NULL, division BIGINT NOT NULL,
    account_id TEXT NOT NULL, contact_id TEXT, updated_at TEXT, excluded INTEGER NOT NULL,
    is_main INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS candidates_by_email ON candidates (email);
CREATE INDEX IF NOT EXISTS candidates_by_account ON candidates (division, account_id);
"""
# The link indexes hold only rows that have the link (issue 9): accounts have no parent, and
# accounts, contacts and invoice lines (most rows) no number, so a first sync wrote ~40 % of
# its index entries for nothing. Lookups are `link = ?` or `link IN (...)`, which imply
# `link IS NOT NULL`: SQLite and PostgreSQL both use a partial index for them. Stores made
# before had full indexes (rows_by_parent, rows_by_number): dropped, and the partial ones
# built once, when such a store is first opened.
UPSERT = ("INSERT INTO rows (stream, division, id, parent, number, data)"
          " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stream, division, id) DO UPDATE"
          " SET parent=excluded.parent, number=excluded.number, data=excluded.data")
# The division of candidates looked up by email (an address is one member across divisions).
ANY = -1
# Keys per `IN (...)` lookup of many rows.
IN_BATCH = 200
# Dirty marks held in memory are written (not committed) once this many wait.
MARK_BATCH = 5000
# Dirty keys recomputed (and cleaned) per chunk.
DIRTY_CHUNK = 2000

CANDIDATE_UPSERT = (
    "INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source_key)"
    " DO UPDATE SET email=excluded.email, division=excluded.division,"
    " account_id=excluded.account_id, contact_id=excluded.contact_id,"
    " updated_at=excluded.updated_at, excluded=excluded.excluded, is_main=excluded.is_main"
)
CANDIDATE_SELECT = (
    "SELECT source_key, email, division, account_id, contact_id, updated_at, excluded, is_main"
    " FROM candidates"
)


@dataclass(frozen=True)
class Candidate:
    """One Exact record (contact, or account without usable contacts) offering an email."""

    source_key: str
    email: str
    division: int
    account_id: str
    contact_id: str | None
    updated_at: str | None
    excluded: bool
    is_main: bool

    @property
    def recency(self) -> tuple[str, str]:
        # ISO UTC strings of one format sort like the dates; source_key breaks ties stably.
        return (self.updated_at or "", self.source_key)


_DECODE = msgspec.json.Decoder().decode


def loads(data: str) -> Any:
    """A stored row's JSON (msgspec: about twice as fast as `json.loads`, same values); what
    msgspec refuses (NaN stored from an odd record) is read by `json.loads` as it was written."""
    try:
        return _DECODE(data)
    except msgspec.DecodeError:
        return json.loads(data)


def plain_number(value: object) -> float:
    """singer-sdk parses JSON numbers as Decimal; amounts here tolerate float precision."""
    if isinstance(value, Decimal):
        return float(value)
    msg = f"Cannot store {type(value).__name__} in the lookup store"
    raise TypeError(msg)


class LookupStore:
    """Input rows by (stream, division, id) with `parent`/`number` columns for the joins."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.db.script(SCHEMA)
        self._marks: set[tuple[str, int, str]] = set()  # dirty marks not yet written
        # (stream, division, link column, value) → [(id, data)] of `prefetch`.
        self._prefetched: dict[tuple[str, int, str, str], list[tuple[str, str]]] = {}
        # ("account", division, account id) or ("email", ANY, email) → candidates.
        self._candidates_of: dict[tuple[str, int, str], list[Candidate]] = {}
        # Deleted IDs are few next to the rows (and looked up for every row): kept in memory.
        self._buried = {(s, d, i) for s, d, i in self.db.execute(
            "SELECT stream, division, id FROM tombstones")}
        # No row yet (a first sync): every row this run writes is dirty until it is flushed.
        self.was_empty = self.db.execute("SELECT 1 FROM rows LIMIT 1").fetchone() is None

    def save(self) -> None:
        """Write what is held in memory; call before a commit."""
        if self._marks:
            self.db.executemany(
                "INSERT INTO dirty VALUES (?, ?, ?) ON CONFLICT DO NOTHING", self._marks)
            self._marks.clear()


    # --- input rows -----------------------------------------------------------------------

    def row(self, stream: str, division: int, row_id: str | None) -> dict[str, Any] | None:
        if row_id is None:
            return None
        cached = self._prefetched.get((stream, division, "id", row_id))
        if cached is not None:
            return loads(cached[0][1]) if cached else None
        found = self.db.execute(
            "SELECT data FROM rows WHERE stream=? AND division=? AND id=?",
            (stream, division, row_id),
        ).fetchone()
        return loads(found[0]) if found else None

    # --- prefetching: a flush reads the rows of a chunk of keys with a few IN queries ------

    def prefetch(self, stream: str, link: str, keys: Iterable[tuple[int, str | None]]) -> None:
        """Read the rows of `stream` whose `link` column ("id", "parent" or "number") is one
        of `keys` ((division, value) pairs) at once; `row`, `children`, `child_ids`,
        `by_number` answer them from memory (as JSON text: each read decodes its own copy)
        until `forget_prefetched` or any write of rows. Same rows, same order (the
        database's `ORDER BY id`), one query per 200 keys instead of one per key."""
        wanted: dict[int, set[str]] = {}
        for division, value in keys:
            if value is not None and (stream, division, link, value) not in self._prefetched:
                wanted.setdefault(division, set()).add(value)
        for division, values in wanted.items():
            for value in values:
                self._prefetched[(stream, division, link, value)] = []
            for value, row_id, data in self._in(f"{link}, id, data", stream, division, link,
                                                values, order=f"{link}, id"):
                self._prefetched[(stream, division, link, value)].append((row_id, data))

    def prefetched_ids(self, stream: str, link: str, division: int, value: str) -> list[str]:
        """Ids of rows prefetched for (`link`, `value`), without decoding them."""
        return [row_id for row_id, _ in self._prefetched.get((stream, division, link, value),
                                                             ())]

    def forget_prefetched(self) -> None:
        self._prefetched.clear()
        self._candidates_of.clear()

    def parent(self, stream: str, division: int, row_id: str | None) -> str | None:
        """The stored link of a row (an invoice's account) without decoding the row."""
        return self.location(stream, division, row_id)[0] if row_id else None

    def location(self, stream: str, division: int, row_id: str) -> tuple[str | None, str | None]:
        """(parent, number) currently stored for a row: needed to dirty what it leaves."""
        found = self.db.execute(
            "SELECT parent, number FROM rows WHERE stream=? AND division=? AND id=?",
            (stream, division, row_id),
        ).fetchone()
        return (found[0], found[1]) if found else (None, None)

    def upsert(
        self, stream: str, division: int, row_id: str, parent: str | None, number: str | None,
        data: dict[str, Any],
    ) -> None:
        self._prefetched.clear()
        self.db.execute(
            UPSERT,
            (stream, division, row_id, parent, number, json.dumps(data, default=plain_number)),
        )

    def upsert_many(self, rows: list[tuple[str, int, str, str | None, str | None, str]]) -> None:
        """(stream, division, id, parent, number, data as JSON text) rows, in order."""
        self._prefetched.clear()
        self.db.executemany(UPSERT, rows)

    def locations(self, stream: str, division: int, row_ids: Iterable[str],
                  ) -> dict[str, tuple[str | None, str | None]]:
        """`location` of many rows of one stream and division at once (missing: absent)."""
        return {row_id: (parent, number) for row_id, parent, number in self._in(
            "id, parent, number", stream, division, "id", row_ids)}

    def ids_by_numbers(self, stream: str, division: int, numbers: Iterable[str],
                       ) -> dict[str, list[str]]:
        """`ids_by_number` of many numbers at once (a number without rows: absent)."""
        found: dict[str, list[str]] = {}
        # Read in the index's order (number, id): `ORDER BY id` made SQLite walk the whole
        # stream's primary key instead of the number index. Sorted here as before (the
        # database's collation may differ from Python's).
        for number, row_id in sorted(self._in("number, id", stream, division, "number",
                                              numbers, order="number, id")):
            found.setdefault(number, []).append(row_id)
        return found

    def _in(self, columns: str, stream: str, division: int, link: str,
            values: Iterable[str], order: str = "id") -> Iterator[tuple[Any, ...]]:
        # A fixed number of placeholders (the last value repeated), so each query is one
        # prepared statement; `columns`, `link` and `order` are fixed names, never input data.
        values = sorted(set(values))
        query = (f"SELECT {columns} FROM rows WHERE stream=? AND division=?"  # noqa: S608
                 f" AND {link} IN ({', '.join('?' * IN_BATCH)}) ORDER BY {order}")
        for start in range(0, len(values), IN_BATCH):
            chunk = values[start:start + IN_BATCH]
            chunk += [chunk[-1]] * (IN_BATCH - len(chunk))
            yield from self.db.execute(query, (stream, division, *chunk))

    def delete(self, stream: str, division: int, row_id: str) -> None:
        self._prefetched.clear()
        self.db.execute(
            "DELETE FROM rows WHERE stream=? AND division=? AND id=?", (stream, division, row_id)
        )

    def children(self, stream: str, division: int, parent: str) -> list[dict[str, Any]]:
        return [loads(data) for data in self._column("data", stream, division, "parent",
                                                          parent)]

    def child_ids(self, stream: str, division: int, parent: str) -> list[str]:
        return self._column("id", stream, division, "parent", parent)

    def by_number(self, stream: str, division: int, number: str) -> list[dict[str, Any]]:
        return [loads(data) for data in self._column("data", stream, division, "number",
                                                          number)]

    def ids_by_number(self, stream: str, division: int, number: str) -> list[str]:
        return self._column("id", stream, division, "number", number)

    def _column(self, column: str, stream: str, division: int, link: str, value: str) -> list[Any]:
        cached = self._prefetched.get((stream, division, link, value))
        if cached is not None:
            return [row_id if column == "id" else data for row_id, data in cached]
        # `column` and `link` are fixed names from the methods above, never input data.
        query = (f"SELECT {column} FROM rows WHERE stream=? AND division=? AND {link}=?"  # noqa: S608
                 " ORDER BY id")
        return [found for (found,) in self.db.execute(query, (stream, division, value))]

    def all_ids(self, stream: str) -> Iterator[tuple[int, str]]:
        yield from self.db.execute("SELECT division, id FROM rows WHERE stream=?", (stream,))

    # --- tombstones: a deleted ID never comes back, even if a stale resend carries it ------

    def bury(self, stream: str, division: int, row_id: str, deleted_at: str | None) -> None:
        self.db.execute(
            "INSERT INTO tombstones VALUES (?, ?, ?, ?) ON CONFLICT (stream, division, id)"
            " DO UPDATE SET deleted_at=excluded.deleted_at",
            (stream, division, row_id, deleted_at),
        )
        self._buried.add((stream, division, row_id))

    def is_buried(self, stream: str, division: int, row_id: str | None) -> bool:
        return row_id is not None and (stream, division, row_id) in self._buried

    def deleted_at(self, stream: str, division: int, row_id: str) -> str | None:
        found = self.db.execute(
            "SELECT deleted_at FROM tombstones WHERE stream=? AND division=? AND id=?",
            (stream, division, row_id),
        ).fetchone()
        return found[0] if found else None

    # --- dirty marks: what the next flush must recompute ----------------------------------

    def mark(self, kind: str, division: int, row_id: str | None) -> None:
        if row_id:
            self._marks.add((kind, division, row_id))
            if len(self._marks) >= MARK_BATCH:
                self.save()  # bounded memory; committed only with the flush, as before

    def dirty(self, kind: str) -> list[tuple[int, str]]:
        self.save()
        return list(
            self.db.execute(
                "SELECT division, id FROM dirty WHERE kind=? ORDER BY division, id", (kind,)
            )
        )

    def dirty_chunks(self, kind: str, size: int = DIRTY_CHUNK) -> Iterator[list[tuple[int, str]]]:
        """`dirty(kind)` a chunk at a time (by key), so a first sync's 100,000 dirty keys are
        not all held at once."""
        self.save()
        query = "SELECT division, id FROM dirty WHERE kind=?"
        chunk = self.db.execute(f"{query} ORDER BY division, id LIMIT ?", (kind, size)).fetchall()
        while chunk:
            yield chunk
            chunk = self.db.execute(
                f"{query} AND (division, id) > (?, ?) ORDER BY division, id LIMIT ?",
                (kind, *chunk[-1], size)).fetchall()

    def has_dirty(self, kind: str) -> bool:
        self.save()
        found = self.db.execute("SELECT 1 FROM dirty WHERE kind=? LIMIT 1", (kind,)).fetchone()
        return found is not None

    def clean(self, kind: str, keys: Iterable[tuple[int, str]]) -> None:
        self.save()  # a mark made since `dirty` for one of these keys is cleaned with it
        self.db.executemany(
            "DELETE FROM dirty WHERE kind=? AND division=? AND id=?",
            [(kind, division, row_id) for division, row_id in keys],
        )

    # --- member candidates, recomputed per dirty account ---------------------------------

    def replace_candidates(
        self, division: int, account_id: str, candidates: list[Candidate]
    ) -> set[str]:
        """Swap an account's candidates; return every email that gained or lost one."""
        old = {c.email for c in self.candidates_of_account(division, account_id)}
        self._candidates_of.clear()
        self.db.execute(
            "DELETE FROM candidates WHERE division=? AND account_id=?", (division, account_id)
        )
        self.db.executemany(
            CANDIDATE_UPSERT,
            [
                (c.source_key, c.email, c.division, c.account_id, c.contact_id, c.updated_at,
                 int(c.excluded), int(c.is_main))
                for c in candidates
            ],
        )
        return old | {c.email for c in candidates}

    def replace_candidates_of_accounts(
        self, accounts: list[tuple[int, str]], candidates: list[Candidate],
    ) -> set[str]:
        """`replace_candidates` of a chunk of accounts at once (issue 9: one statement per
        chunk, not three per account): `candidates` are all of their new ones. Same end state
        as account by account: a contact that moved between two of these accounts is one
        candidate (by source_key) either way. Returns every email that was or is offered."""
        old = self._emails_of_accounts(accounts)
        self._candidates_of.clear()
        self.db.executemany("DELETE FROM candidates WHERE division=? AND account_id=?",
                            accounts)
        self.db.executemany(CANDIDATE_UPSERT, [
            (c.source_key, c.email, c.division, c.account_id, c.contact_id, c.updated_at,
             int(c.excluded), int(c.is_main)) for c in candidates])
        return old | {c.email for c in candidates}

    def _emails_of_accounts(self, accounts: list[tuple[int, str]]) -> set[str]:
        emails: set[str] = set()
        query = (f"SELECT email FROM candidates WHERE division=? AND account_id"  # noqa: S608
                 f" IN ({', '.join('?' * IN_BATCH)})")
        by_division: dict[int, list[str]] = {}
        for division, account_id in accounts:
            by_division.setdefault(division, []).append(account_id)
        for division, ids in by_division.items():
            for start in range(0, len(ids), IN_BATCH):
                chunk = ids[start:start + IN_BATCH]
                chunk += [chunk[-1]] * (IN_BATCH - len(chunk))  # one prepared statement
                emails.update(email for (email,) in self.db.execute(query, (division, *chunk)))
        return emails

    def candidates_of_account(self, division: int, account_id: str) -> list[Candidate]:
        cached = self._candidates_of.get(("account", division, account_id))
        if cached is not None:
            return list(cached)
        return self._candidates(self.db.execute(
            f"{CANDIDATE_SELECT} WHERE division=? AND account_id=? ORDER BY source_key",
            (division, account_id)))

    def candidates_for_email(self, email: str) -> list[Candidate]:
        cached = self._candidates_of.get(("email", ANY, email))
        if cached is not None:
            return list(cached)
        return self._candidates(self.db.execute(
            f"{CANDIDATE_SELECT} WHERE email=? ORDER BY source_key", (email,)))

    def prefetch_candidates(self, by: str, keys: Iterable[tuple[int, str | None]]) -> None:
        """`candidates_of_account` (`by` "account": (division, account_id) keys) or
        `candidates_for_email` ("email": (any division, email)) of many keys at once, kept
        like `prefetch`'s rows (until `forget_prefetched` or a change of candidates)."""
        wanted: dict[int, set[str]] = {}
        for division, value in keys:
            division = ANY if by == "email" else division
            if value is not None and (by, division, value) not in self._candidates_of:
                wanted.setdefault(division, set()).add(value)
        column = "email" if by == "email" else "account_id"
        where = "" if by == "email" else "division=? AND "
        query = (f"{CANDIDATE_SELECT} WHERE {where}{column}"
                 f" IN ({', '.join('?' * IN_BATCH)}) ORDER BY {column}, source_key")
        for division, values in wanted.items():
            for value in values:
                self._candidates_of[(by, division, value)] = []
            ordered = sorted(values)
            for start in range(0, len(ordered), IN_BATCH):
                chunk = ordered[start:start + IN_BATCH]
                chunk += [chunk[-1]] * (IN_BATCH - len(chunk))
                params = chunk if by == "email" else [division, *chunk]
                for found in self._candidates(self.db.execute(query, params)):
                    value = found.email if by == "email" else found.account_id
                    self._candidates_of[(by, division, value)].append(found)

    @staticmethod
    def _candidates(rows: Iterable[tuple[Any, ...]]) -> list[Candidate]:
        return [
            Candidate(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), bool(row[7]))
            for row in rows
        ]
