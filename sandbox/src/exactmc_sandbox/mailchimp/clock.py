"""Time as the simulator tells it: real UTC time plus an offset tests can move forward.

Mailchimp timestamps have one-second resolution ("2026-11-26T06:27:22+00:00"); advancing the
clock lets tests observe `last_changed` moving without sleeping.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache


class Clock:
    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()
        self._last: tuple[int, timedelta, str] | None = None  # (second, offset, its iso)

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(timezone.utc).replace(microsecond=0) + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def iso(self) -> str:
        # Interned: every record written in the same second shares one string (issue 9:
        # created_at/updated_at/last_changed of 100k members and orders); formatted once a
        # second (it was 3 % of the sandbox's CPU under a first sync).
        second = int(time.time())
        with self._lock:
            last, offset = self._last, self._offset
        if last is not None and last[0] == second and last[1] == offset:
            return last[2]
        text = sys.intern(format_time(datetime.fromtimestamp(second, timezone.utc) + offset))
        with self._lock:
            self._last = (second, offset, text)
        return text


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


@lru_cache(maxsize=1 << 16)
def parse_time(text: str) -> datetime:
    """ISO 8601 as clients send it (`Z` or offset); naive values are taken as UTC.

    Cached: a member list filtered on `since_last_changed` parses every member's stored time,
    and those repeat (one-second resolution)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment
