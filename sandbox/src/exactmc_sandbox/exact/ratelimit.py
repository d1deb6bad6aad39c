"""Exact's per-app, per-division call limits (minutely and daily) with their headers.

Minutely windows restart on whole minutes: the reset values in public logs always fall on :00 of
a minute (a shortened test minute is aligned the same way, on multiples of its length).
Choices (unconfirmed): the daily window starts at the first call after the previous one ended;
`start_new_day()` ends it at once (tests play several days). The limiter uses real time, not the
adjustable sandbox clock, because clients pace themselves on the reset times.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class RateLimitSettings:
    minutely_limit: int = 60
    daily_limit: int = 5000
    minute_seconds: float = 60
    day_seconds: float = 86400


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class RateDecision:
    allowed: bool
    headers: dict[str, str]
    exhausted: str | None = None  # "minutely" or "daily" when refused


def _reset_ms(window: _Window, length: float) -> str:
    return str(int((window.start + length) * 1000))  # epoch milliseconds


class RateLimiter:
    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._minute: dict[tuple[str, int], _Window] = {}
        self._day: dict[tuple[str, int], _Window] = {}

    def _window(self, table: dict[tuple[str, int], _Window], key: tuple[str, int],
                length: float, now: float, aligned: bool = False) -> _Window:
        window = table.get(key)
        if window is None or now >= window.start + length:
            start = (now // length) * length if aligned else now
            window = table[key] = _Window(start)
        return window

    def start_new_day(self) -> None:
        """Every daily budget is whole again, as after Exact's daily reset."""
        with self._lock:
            self._day.clear()

    def take(self, client_id: str, division: int) -> RateDecision:
        """Count one call; refuse it (429) when a window is exhausted."""
        s = self.settings
        key = (client_id, division)
        with self._lock:
            now = time.time()
            minute = self._window(self._minute, key, s.minute_seconds, now, aligned=True)
            day = self._window(self._day, key, s.day_seconds, now)
            daily = {"X-RateLimit-Limit": str(s.daily_limit),
                     "X-RateLimit-Reset": _reset_ms(day, s.day_seconds)}
            minutely = {"X-RateLimit-Minutely-Limit": str(s.minutely_limit),
                        "X-RateLimit-Minutely-Reset": _reset_ms(minute, s.minute_seconds)}
            # A refusal shows only the exhausted window's headers, as Exact does.
            if day.count >= s.daily_limit:
                return RateDecision(False, {**daily, "X-RateLimit-Remaining": "0"}, "daily")
            if minute.count >= s.minutely_limit:
                return RateDecision(False, {**minutely, "X-RateLimit-Minutely-Remaining": "0"},
                                    "minutely")
            minute.count += 1
            day.count += 1
            daily["X-RateLimit-Remaining"] = str(s.daily_limit - day.count)
            minutely["X-RateLimit-Minutely-Remaining"] = str(s.minutely_limit - minute.count)
            return RateDecision(True, {**daily, **minutely})
