"""A fair share of each division's daily call budget for every stream of a run.

Reading streams one after the other, a small daily budget was spent on the first ones and the
last (invoices, receivables) were never reached. Instead each (stream, division) partition may
spend at most the division's remaining budget divided by the partitions still to sync this run,
so what one leaves unused flows to the next. When the budget cannot give every partition even
one call, the partitions that missed most turns in earlier runs go first (the count is kept in
each partition's state), so over successive runs every stream makes progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

LOGGER = logging.getLogger("tap_exactonline.fair_share")

MISSED_TURNS_KEY = "budget_turns_missed"  # in each partition's state


class ShareSpent(Exception):
    """This partition used its share of the division's daily budget: stop it, keep its state."""

    def __init__(self, stream: str, division: int | None) -> None:
        super().__init__(f"'{stream}' used its share of today's calls for division {division}.")
        self.stream = stream
        self.division = division


@dataclass
class _Turn:
    key: str
    spent: int = 0
    cap: int | None = None  # unknown until the division's remaining budget is


class FairShare:
    """Per division: which partitions are still to sync this run, and the one syncing now."""

    def __init__(self, remaining: Callable[[int | None], int | None]) -> None:
        self._remaining = remaining  # the division's daily calls left, per the last answer
        self._pending: dict[int | None, list[str]] = {}
        self._turns: dict[int | None, _Turn] = {}
        self._skipped: set[tuple[str, int | None]] = set()
        # Partitions stopped by their share or skipped: their feeds were not read to the end.
        self.cut_short: set[tuple[str, int | None]] = set()

    def begin(self, division: int | None, key: str, selected: Sequence[str],
              missed: Mapping[str, int]) -> bool:
        """A partition starts; False when it must skip this run to let others have a turn.

        `selected`: the budget keys of every selected stream, in sync order; `missed`: how many
        turns each has missed in earlier runs.
        """
        pending = self._pending.setdefault(division, list(dict.fromkeys(selected)))
        self._turns[division] = _Turn(key)
        if (key, division) in self._skipped:  # e.g. the second stream of a shared feed
            return False
        remaining = self._remaining(division)
        if key not in pending or remaining is None or remaining >= len(pending):
            return True
        # Fewer calls left than partitions: those that waited longest go first.
        order = sorted(pending, key=lambda k: (-missed.get(k, 0), pending.index(k)))
        if order.index(key) < remaining:
            return True
        self._skipped.add((key, division))
        self.cut_short.add((key, division))
        LOGGER.info("'%s' skips division %s this run: %s call(s) left today for %s streams; "
                    "those that waited longest go first.", key, division, remaining, len(pending))
        return False

    def charge(self, division: int | None) -> None:
        """Count one call of the partition syncing now; refuse it beyond the partition's share."""
        turn = self._turns.get(division)
        if turn is None:  # a call outside any partition (system/Divisions)
            return
        if turn.cap is None:
            remaining = self._remaining(division)
            if remaining is not None:
                left = max(1, len(self._pending.get(division, ())))
                # What was left when the partition started, shared with those still to come.
                turn.cap = max(1, (remaining + turn.spent) // left)
        if turn.cap is not None and turn.spent >= turn.cap:
            self.cut_short.add((turn.key, division))
            raise ShareSpent(turn.key, division)
        turn.spent += 1

    def end(self, division: int | None, key: str) -> None:
        """The partition is done (complete, stopped or skipped): its unused share flows on."""
        pending = self._pending.get(division, [])
        if key in pending:
            pending.remove(key)
        turn = self._turns.get(division)
        if turn is not None and turn.key == key:
            del self._turns[division]
