"""The Mailchimp inbox: one JSON line per list-webhook event, fsync'd before the 200.

Read by tap-mailchimp (streams `mailing_exclusions`, source `webhook`, and `email_changes`),
which keeps its own bookmark on `fired_at`, so the inbox is append-only here. Repeats (same
type, fired_at and address) are remembered beside it (`.seen`, bounded) and not written again,
after a restart too. Built on the tap's durable-append and seen-set helpers.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from tap_exactonline.webhook_seen import SeenDeliveries, durable_append

from exactmc_webhooks.mailchimp_events import event_key

LOGGER = logging.getLogger("exactmc_webhooks")
ADD_LOCK_TIMEOUT = 10.0  # seconds; a stuck holder must not pin every worker (then 503)


class MailchimpInbox:
    def __init__(self, path: str | Path, seen_limit: int = 20_000) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._seen = SeenDeliveries(str(self.path) + ".seen", seen_limit)

    def add(self, event: dict[str, Any]) -> bool:
        """Record an event; False (nothing written) when it was recorded before."""
        key = event_key(event)
        entry = {**event, "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock.acquire(timeout=ADD_LOCK_TIMEOUT):
            if key in self._seen:
                return False
            durable_append(self.path, self._line_start() + json.dumps(entry) + "\n")
            self._seen.add(key)  # after the inbox: a kill between means a repeat, not a loss
        return True

    def entries(self) -> list[dict[str, Any]]:
        """Every whole entry, oldest first (a line torn by a kill is skipped)."""
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line) if line.strip() else None
            except ValueError:
                LOGGER.warning("Skipped a torn line in %s", self.path)
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found

    def _line_start(self) -> str:
        try:
            with self.path.open("rb") as handle:
                handle.seek(-1, 2)
                return "" if handle.read(1) == b"\n" else "\n"
        except OSError:
            return ""  # missing or empty
