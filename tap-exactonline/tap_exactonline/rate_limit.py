"""Pacing from Exact's X-RateLimit-* headers (limits are per app and per division).

Exact allows 60 calls a minute and 5,000 a day per division and says how many are left on every
answer. Resets are UTC epoch MILLISECONDS. We never guess: we read the headers, sleep until the
minutely reset when nothing is left, and stop asking a division once its daily budget is spent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tap_exactonline.fair_share import FairShare

LOGGER = logging.getLogger("tap_exactonline.rate_limit")


class DailyLimitReached(Exception):
    """The division's daily call budget is spent: stop asking, keep the state."""

    def __init__(self, division: int | None) -> None:
        super().__init__(f"Exact's daily call limit is reached for division {division}.")
        self.division = division


@dataclass
class Budget:
    """What the last answer said about one division's limits."""

    minutely_remaining: int | None = None
    minutely_reset: float | None = None  # epoch seconds
    daily_remaining: int | None = None
    daily_reset: float | None = None


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reset(headers: Mapping[str, str], name: str) -> float | None:
    value = _int(headers, name)
    return value / 1000 if value is not None else None  # milliseconds → seconds


class RateLimiter:
    """Shared by every stream of a run; keyed by division (None: calls without one)."""

    def __init__(
        self,
        max_wait: float = 90.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._budgets: dict[int | None, Budget] = {}
        self.exhausted: set[int | None] = set()
        self.shares = FairShare(lambda division: self.budget(division).daily_remaining)

    @property
    def stopped_early(self) -> bool:
        """Whether some feed was not read to its end: a daily limit, or a partition's share."""
        return bool(self.exhausted or self.shares.cut_short)

    @property
    def budgets(self) -> dict[int | None, Budget]:
        return dict(self._budgets)

    def budget(self, division: int | None) -> Budget:
        return self._budgets.setdefault(division, Budget())

    def before_request(self, division: int | None) -> None:
        """Wait for the minutely window if it is used up; refuse if the day's budget (or the
        partition's share of it) is."""
        if division in self.exhausted:
            raise DailyLimitReached(division)
        budget = self.budget(division)
        if budget.daily_remaining == 0 and not self._passed(budget.daily_reset):
            self._mark_exhausted(division)
        self.shares.charge(division)  # the partition's fair share of what is left today
        if budget.minutely_remaining == 0 and not self._passed(budget.minutely_reset):
            self.wait_for_minute(division)

    def observe(self, division: int | None, status: int, headers: Mapping[str, str]) -> None:
        """Remember what this answer said; a refusal on the daily limit ends the division."""
        budget = self.budget(division)
        minutely = _int(headers, "X-RateLimit-Minutely-Remaining")
        if minutely is not None:
            budget.minutely_remaining = minutely
            budget.minutely_reset = _reset(headers, "X-RateLimit-Minutely-Reset")
        daily = _int(headers, "X-RateLimit-Remaining")
        if daily is not None:
            budget.daily_remaining = daily
            budget.daily_reset = _reset(headers, "X-RateLimit-Reset")
            budget.daily_limit = _int(headers, "X-RateLimit-Limit")
        if status == 429 and daily == 0:
            self._mark_exhausted(division)

    def retry_wait(self, division: int | None) -> float:
        """Seconds to wait after a minutely 429: until the reset (a second if unknown)."""
        budget = self.budget(division)
        if budget.minutely_reset is None:
            return 1.0
        return self._clamp(budget.minutely_reset - self._clock())

    def wait_for_minute(self, division: int | None) -> None:
        wait = self.retry_wait(division)
        LOGGER.info("Minutely call limit reached for division %s: waiting %.1f s.", division, wait)
        self._sleep(wait)
        self.budget(division).minutely_remaining = None

    def _clamp(self, seconds: float) -> float:
        # A small margin past the reset; the cap guards against a skewed clock.
        return min(max(seconds + 0.05, 0.05), self.max_wait)

    def _passed(self, moment: float | None) -> bool:
        return moment is not None and self._clock() >= moment

    def _mark_exhausted(self, division: int | None) -> None:
        if division not in self.exhausted:
            self.exhausted.add(division)
            LOGGER.warning(
                "Exact's DAILY call limit is spent for division %s: no more calls for it in "
                "this run. The state keeps the last bookmarks; the next run resumes there.",
                division,
            )
        raise DailyLimitReached(division)
