"""What the mapper has sent downstream, and which of it the target has confirmed.

Unchanged outputs are not re-sent: each emitted record's hash is kept per output key. But a hash
may only be trusted once the target has *confirmed* the record, or a crash between "emitted" and
"written to Mailchimp" would lose it: the tap resends (its state did not advance) and the mapper
would skip it as already sent. Confirmation is learned from STATE, the only thing that flows
back: the target emits a STATE after it has processed every record before it, Meltano saves it,
and a singer-sdk tap echoes its saved state as its first message on the next run. Every STATE
the mapper forwards is logged with the output sequence number at that moment, so the echo tells
up to which sequence number the target confirmed. Hashes of anything emitted later are forgotten
and those records are simply sent again (target writes are idempotent). A run without an echo
(first run, `--full-refresh`) trusts only what an earlier echo confirmed.

Speed (issue 9): the writes made as outputs go out (hash, sequence number, forgetting what an
output ends) are queued and written with `executemany` at `save` (before any read of them and
before each commit; forgetting first, which is the same as in order, as a forget of something
recorded in the same batch writes the batch first); the rejections already reported are kept
in memory. Commits stay where they were, so a kill still loses exactly what it lost before:
everything since the last flush, which is then sent again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from .dates import utc_now_iso
from .schemas import OUTPUT_STREAMS
from .store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id {serial}, started_at TEXT, completed INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS emitted (
    stream TEXT NOT NULL, key TEXT NOT NULL, owner TEXT, hash TEXT, payload TEXT NOT NULL,
    seq INTEGER NOT NULL, run_id INTEGER NOT NULL, PRIMARY KEY (stream, key));
CREATE INDEX IF NOT EXISTS emitted_by_owner ON emitted (stream, owner);
CREATE TABLE IF NOT EXISTS forwarded_states (
    state_hash TEXT NOT NULL, seq INTEGER NOT NULL, run_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS forwarded_by_hash ON forwarded_states (state_hash);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS opted_out (email TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS reported (
    stream TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (stream, key));
"""
# Queued writes are written (not committed) once this many wait: memory stays flat.
WRITE_BATCH = 2000
FORGET_KEY = "DELETE FROM emitted WHERE stream=? AND key=?"
FORGET_OWNER = "DELETE FROM emitted WHERE stream=? AND owner=?"


# One encoder for every hash: `json.dumps` with options builds a new encoder per call, which
# cost as much as the encoding of a small output (issue 9). Same text, byte for byte.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str).encode


def canonical_json(value: Any) -> str:
    return _CANONICAL(value)


def content_hash(value: Any) -> str:
    """sha256 of the canonical JSON: the form every output hash had before issue 9's seventh
    pass, and still the form of STATE hashes."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


# An output's hash since issue 9's seventh pass: sha256 of msgspec's sorted compact UTF-8
# encoding (~4x cheaper than the canonical JSON above), marked by a prefix. For plain JSON
# values only (what `writer.render_record` accepts): msgspec writes NaN as null and a Decimal
# its own way, so anything else keeps the old form. A stored hash of the old form is compared
# in the old form, once, and then rewritten (`is_unchanged`): an upgrade re-sends nothing.
HASH_PREFIX = "s1:"
_SORTED = msgspec.json.Encoder(order="sorted").encode


def output_hash(value: Any) -> str:
    return HASH_PREFIX + hashlib.sha256(_SORTED(value)).hexdigest()


class OutputLedger:
    """Emitted-output hashes, forwarded STATEs, runs, and rejections already reported."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.db.script(SCHEMA)
        self.run_id = self._start_run()
        self._output_seq = self._saved_seq = self._counter("output_seq")
        self._records: list[tuple[Any, ...]] = []  # queued `emitted` rows
        self._recorded: set[tuple[str, str]] = set()  # their (stream, key) and (stream, owner)
        self._forgets: dict[str, list[tuple[str, str]]] = {FORGET_KEY: [], FORGET_OWNER: []}
        self._rewrites: list[tuple[str, str, str, str]] = []  # old-form hashes -> new form
        # Streams that may have rows (only grows): on a first sync the lookups of what was
        # sent before are answered without a query.
        self._used = {stream for stream in OUTPUT_STREAMS if self._exists(
            "SELECT 1 FROM emitted WHERE stream=? LIMIT 1", (stream,))}
        self._any_opt_out = self._exists("SELECT 1 FROM opted_out LIMIT 1", ())
        # Rejections still reported (few): looked up for every record that is fine.
        self._reported = {(stream, key): reason for stream, key, reason in self.db.execute(
            "SELECT stream, key, reason FROM reported")}

    def _exists(self, query: str, params: tuple[Any, ...]) -> bool:
        return self.db.execute(query, params).fetchone() is not None

    def save(self) -> None:
        """Write the queued writes: hash rewrites (of outputs not sent again: nothing else of
        theirs is queued before), forgets (see `_queue_forget`), then the records."""
        if self._rewrites:
            self.db.executemany(
                "UPDATE emitted SET hash=? WHERE stream=? AND key=? AND hash=?", self._rewrites)
            self._rewrites.clear()
        for statement, params in self._forgets.items():
            if params:
                self.db.executemany(statement, params)
                params.clear()
        if self._records:
            self.db.executemany(
                "INSERT INTO emitted VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (stream, key)"
                " DO UPDATE SET owner=excluded.owner, hash=excluded.hash,"
                " payload=excluded.payload, seq=excluded.seq, run_id=excluded.run_id",
                self._records)
            self._records.clear()
            self._recorded.clear()
        if self._saved_seq != self._output_seq:
            self._set_counter("output_seq", self._output_seq)
            self._saved_seq = self._output_seq

    def _queue_forget(self, statement: str, stream: str, key: str) -> None:
        if stream not in self._used:
            return  # no output of `stream` was ever recorded (a first sync): nothing to forget
        if (stream, key) in self._recorded:
            self.save()  # it was recorded in this batch: that record goes first
        self._forgets[statement].append((stream, key))

    # --- runs and confirmation ------------------------------------------------------------

    def _start_run(self) -> int:
        (run_id,) = self.db.execute(
            "INSERT INTO runs (started_at) VALUES (?) RETURNING run_id", (utc_now_iso(),)
        ).fetchone()
        self.db.commit()
        return int(run_id)

    def complete_run(self) -> None:
        self.db.execute("UPDATE runs SET completed=1 WHERE run_id=?", (self.run_id,))

    def confirm(self, echoed_state: Any | None) -> bool:
        """Forget hashes the target has not confirmed; True when the echo was recognised."""
        self.save()
        found = None
        if echoed_state is not None:
            # MIN: the earliest forward of an identical state is the only point surely confirmed.
            found = self.db.execute(
                "SELECT MIN(seq) FROM forwarded_states WHERE state_hash=?",
                (content_hash(echoed_state),),
            ).fetchone()[0]
        confirmed = found if found is not None else self._counter("confirmed_seq")
        # A forgotten hash makes its output go again when recomputed. Upserts are harmless to
        # repeat whenever in doubt; a deletion goes again only when an echo proves the target
        # never confirmed it (without an echo, e.g. on a full refresh, it is trusted).
        self.db.execute(
            "UPDATE emitted SET hash=NULL WHERE seq>? AND (stream!='deletions' OR ?)",
            (confirmed, found is not None),
        )
        self._set_counter("confirmed_seq", confirmed)
        if found is not None:
            # Meltano echoes its newest saved state: older forwards are never looked up again
            # (one row per STATE and run would otherwise pile up forever).
            self.db.execute("DELETE FROM forwarded_states WHERE seq<?", (confirmed,))
        return found is not None

    def log_forwarded_state(self, state: Any) -> None:
        self.db.execute(
            "INSERT INTO forwarded_states VALUES (?, ?, ?)",
            (content_hash(state), self._seq(), self.run_id),
        )

    def _seq(self) -> int:
        return self._output_seq

    def _next_seq(self) -> int:
        self._output_seq += 1
        return self._output_seq

    def _counter(self, name: str) -> int:
        found = self.db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(found[0]) if found else 0

    def _set_counter(self, name: str, value: int) -> None:
        self.db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT (name)"
                        " DO UPDATE SET value=excluded.value", (name, value))

    # --- emitted outputs ------------------------------------------------------------------

    def has_confirmed(self, stream: str) -> bool:
        """Whether any output of `stream` has a trusted hash (none on a first sync)."""
        self.save()
        return self.db.execute(
            "SELECT 1 FROM emitted WHERE stream=? AND hash IS NOT NULL LIMIT 1", (stream,)
        ).fetchone() is not None

    def is_unchanged(
        self, stream: str, key: str, digest: str, old_digest: Callable[[], str] | None = None,
    ) -> bool:
        """Whether the trusted hash of the output is `digest`. A stored hash of the old form
        (no prefix) is compared with `old_digest()` (the same output's old-form hash) and,
        when equal, rewritten in the new form (queued)."""
        if stream not in self._used:
            return False
        self.save()
        found = self.db.execute(
            "SELECT hash FROM emitted WHERE stream=? AND key=?", (stream, key)
        ).fetchone()
        stored = found[0] if found else None
        if stored is None or stored == digest:
            return stored is not None
        if old_digest is None or stored.startswith(HASH_PREFIX) \
                or not digest.startswith(HASH_PREFIX) or stored != old_digest():
            return False
        self._rewrites.append((digest, stream, key, stored))
        return True

    def record(
        self, stream: str, key: str, digest: str, payload: str, owner: str | None,
    ) -> None:
        """`payload`: the JSON text kept of the output (what `payload` and
        `payloads_of_owner` read back; empty for streams never read: `stored_payload`)."""
        self._records.append(
            (stream, key, owner, digest, payload, self._next_seq(), self.run_id))
        self._recorded.add((stream, key))
        self._used.add(stream)
        if owner is not None:
            self._recorded.add((stream, owner))
        if len(self._records) >= WRITE_BATCH:
            self.save()  # bounded memory; still uncommitted until the flush commits

    def was_emitted(self, stream: str, key: str) -> bool:
        if stream not in self._used:
            return False
        self.save()
        found = self.db.execute(
            "SELECT 1 FROM emitted WHERE stream=? AND key=?", (stream, key)
        ).fetchone()
        return found is not None

    def payload(self, stream: str, key: str) -> dict[str, Any] | None:
        if stream not in self._used:
            return None
        self.save()
        found = self.db.execute(
            "SELECT payload FROM emitted WHERE stream=? AND key=?", (stream, key)
        ).fetchone()
        return json.loads(found[0]) if found else None

    def payloads_of_owner(self, stream: str, owner: str) -> list[tuple[dict[str, Any], bool]]:
        """(payload, confirmed) of every output of `stream` owned by `owner`."""
        if stream not in self._used:
            return []
        self.save()
        return [
            (json.loads(payload), confirmed)
            for payload, confirmed in self.db.execute(
                "SELECT payload, hash IS NOT NULL FROM emitted WHERE stream=? AND owner=?",
                (stream, owner),
            )
        ]

    def unconfirmed(self) -> Iterator[tuple[str, str, str | None]]:
        """(stream, key, owner) of what was sent but not confirmed (its hash was forgotten);
        read as iterated: after an unconfirmed first sync that is every output."""
        self.save()
        yield from self.db.execute("SELECT stream, key, owner FROM emitted WHERE hash IS NULL")

    def forget(self, stream: str, key: str) -> None:
        self._queue_forget(FORGET_KEY, stream, key)

    def forget_owner(self, stream: str, owner: str) -> None:
        self._queue_forget(FORGET_OWNER, stream, owner)

    # --- addresses the mapper ever sent an opt-out for (kept even when deleted) ----------

    def note_opt_out(self, email: str) -> None:
        self.db.execute("INSERT INTO opted_out VALUES (?) ON CONFLICT DO NOTHING", (email,))
        self._any_opt_out = True

    def opted_out(self, email: str) -> bool:
        if not self._any_opt_out:
            return False
        found = self.db.execute("SELECT 1 FROM opted_out WHERE email=?", (email,)).fetchone()
        return found is not None

    # --- rejections already reported (not re-reported while unchanged) --------------------

    def already_reported(self, stream: str, key: str, reason: str) -> bool:
        return self._reported.get((stream, key)) == reason

    def mark_reported(self, stream: str, key: str, reason: str) -> None:
        self.db.execute("INSERT INTO reported VALUES (?, ?, ?) ON CONFLICT (stream, key)"
                        " DO UPDATE SET reason=excluded.reason", (stream, key, reason))
        self._reported[(stream, key)] = reason

    def clear_reported(self, stream: str, key: str) -> None:
        if self._reported.pop((stream, key), None) is not None:
            self.db.execute("DELETE FROM reported WHERE stream=? AND key=?", (stream, key))
