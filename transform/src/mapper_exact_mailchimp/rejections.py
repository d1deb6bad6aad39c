"""The dead-letter file: records that cannot become Mailchimp data, with key and reason."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .dates import utc_now_iso
from .ledger import OutputLedger


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
    """Appends new or changed rejections as JSON lines; an unchanged one is reported once."""

    def __init__(self, path: str | Path, ledger: OutputLedger) -> None:
        self.path = Path(path)
        self.ledger = ledger
        self.reported_this_run = 0

    def report(self, rejections: list[Rejection]) -> int:
        fresh = [
            r for r in rejections
            if not self.ledger.already_reported(r.stream, r.ledger_key, r.reason)
        ]
        if not fresh:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = utc_now_iso()
        with self.path.open("a", encoding="utf-8") as dead_letters:
            for r in fresh:
                line = {"time": now, "stream": r.stream, "division": r.division, "key": r.key,
                        "reason": r.reason, "value": r.value}
                dead_letters.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
            dead_letters.flush()
            # On disk before "reported" is committed: a crash may repeat a line, never lose one.
            os.fsync(dead_letters.fileno())
        for r in fresh:
            self.ledger.mark_reported(r.stream, r.ledger_key, r.reason)
        self.reported_this_run += len(fresh)
        return len(fresh)

    def resolved(self, stream: str, division: int, key: str) -> None:
        """The record is fine now: if it breaks again it must be reported again."""
        self.ledger.clear_reported(stream, f"{division}:{key}")
