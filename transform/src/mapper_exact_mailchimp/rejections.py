"""The dead letters: records that cannot become Mailchimp data, with key and reason.

They are rows of the `rejections` table in the mapper's own database (`store.py`), written in
the transaction of the flush that found them, with the "already reported" mark: a crash loses
or repeats neither. `target-mailchimp:status` reads the table (docs/contracts.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from .dates import utc_now_iso
from .ledger import OutputLedger
from .store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS rejections (
    id {serial}, rejected_at TEXT NOT NULL, stream TEXT NOT NULL, division BIGINT,
    key TEXT NOT NULL, reason TEXT NOT NULL, value TEXT);
"""
INSERT = ("INSERT INTO rejections (rejected_at, stream, division, key, reason, value)"
          " VALUES (?, ?, ?, ?, ?, ?)")


def _text(value: object) -> str:
    # PostgreSQL's text cannot hold NUL, and a broken record may carry one.
    return str(value).replace("\x00", "\\u0000")


@dataclass(frozen=True)
class Rejection:
    stream: str
    division: int | None
    key: str
    reason: str
    value: object = None

    @property
    def ledger_key(self) -> str:
        return f"{self.division}:{self.key}"


class RejectionLog:
    """Adds new or changed rejections to the table; an unchanged one is reported once."""

    def __init__(self, db: Database, ledger: OutputLedger) -> None:
        self.db = db
        self.db.script(SCHEMA)
        self.ledger = ledger
        self.reported_this_run = 0

    def report(self, rejections: list[Rejection]) -> int:
        fresh = [
            r for r in (replace(r, key=_text(r.key), reason=_text(r.reason)) for r in rejections)
            if not self.ledger.already_reported(r.stream, r.ledger_key, r.reason)
        ]
        if not fresh:
            return 0
        now = utc_now_iso()
        self.db.executemany(INSERT, [
            (now, r.stream, r.division, r.key, r.reason,
             json.dumps(r.value, default=str, ensure_ascii=False))
            for r in fresh])
        for r in fresh:
            self.ledger.mark_reported(r.stream, r.ledger_key, r.reason)
        self.reported_this_run += len(fresh)
        return len(fresh)

    def resolved(self, stream: str, division: int, key: str) -> None:
        """The record is fine now: if it breaks again it must be reported again."""
        self.ledger.clear_reported(stream, f"{division}:{key}")


def read_rejections(db: Database) -> list[dict[str, object]]:
    """Every dead letter, oldest first, as the JSON objects the old file held."""
    return [
        {"time": at, "stream": stream, "division": division, "key": key, "reason": reason,
         "value": json.loads(value) if value is not None else None}
        for at, stream, division, key, reason, value in db.execute(
            "SELECT rejected_at, stream, division, key, reason, value FROM rejections"
            " ORDER BY id")]
