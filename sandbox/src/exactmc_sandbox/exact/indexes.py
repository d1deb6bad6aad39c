"""Indexes that make every page of a feed cost the page, not the table (issue 9).

`FeedIndex`: row keys in Timestamp order, for the sync feeds (`Timestamp gt n` = a bisect).
`SortedKeys`: row keys in key order, for the bulk and normal endpoints (`$skiptoken` = a bisect).
Both are kept on write by `DataStore`; neither holds rows, so a row is always read as it is now.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator

# A stale entry is skipped on read; once they outnumber this and the live ones, the index is
# rebuilt (amortised O(1) per write).
COMPACT_AFTER = 1_000


class FeedIndex:
    """(Timestamp, key) pairs in Timestamp order, appended on every stamp.

    A row that is stamped again (changed) or deleted leaves its old entry behind as stale: the
    reader checks each entry against the row's current stamp (`is_current`) and skips it.
    """

    __slots__ = ("_keys", "_stale", "_stamps")

    def __init__(self) -> None:
        self._stamps = array("q")  # 8 bytes a stamp, not an int object
        self._keys: list[str] = []
        self._stale = 0

    def add(self, stamp: int, key: str) -> None:
        if not self._stamps or stamp > self._stamps[-1]:
            self._stamps.append(stamp)
            self._keys.append(key)
        else:  # not the newest (a row inserted with its own Timestamp): keep the order
            at = bisect_right(self._stamps, stamp)
            self._stamps.insert(at, stamp)
            self._keys.insert(at, key)

    def retire(self) -> None:
        """One entry went stale (its row was stamped again or deleted)."""
        self._stale += 1

    def after(self, stamp: int) -> Iterator[tuple[int, str]]:
        """Entries with a Timestamp above `stamp`, in order (stale ones included)."""
        stamps, keys = self._stamps, self._keys
        for at in range(bisect_right(stamps, stamp), len(stamps)):
            yield stamps[at], keys[at]

    def needs_compaction(self) -> bool:
        return self._stale > COMPACT_AFTER and self._stale > len(self._stamps) // 2

    def rebuild(self, entries: Iterable[tuple[int, str]]) -> None:
        pairs = sorted(entries)
        self._stamps = array("q", (stamp for stamp, _ in pairs))
        self._keys = [key for _, key in pairs]
        self._stale = 0


class SortedKeys:
    """A table's keys in key order (keys never change once a row exists)."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = sorted(keys)

    def add(self, key: str) -> None:
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
        else:
            insort(self._keys, key)

    def remove(self, key: str) -> None:
        at = bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            del self._keys[at]

    def after(self, key: str) -> Iterator[str]:
        keys = self._keys
        for at in range(bisect_right(keys, key), len(keys)):
            yield keys[at]


def take(rows: Iterable[dict], count: int, accept: Callable[[dict], bool] | None = None
         ) -> list[dict]:
    """The first `count` rows (that `accept` accepts)."""
    out = []
    for row in rows:
        if accept is None or accept(row):
            out.append(row)
            if len(out) >= count:
                break
    return out
