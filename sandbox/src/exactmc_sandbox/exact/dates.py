"""Exact's date formats: `/Date(ms)/` in responses and `datetime'...'` literals in filters."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


# Sandbox choice: the dates Exact can keep are SQL Server's `datetime` range. A date outside it,
# or one whose Amsterdam wall clock leaves year 9999 (it could not be written as `/Date(ms)/`),
# is refused with a 400 rather than stored.
EARLIEST = datetime(1753, 1, 1, tzinfo=timezone.utc)
LATEST_WALL_CLOCK = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)


def storable(value: datetime) -> bool:
    """Whether Exact can keep `value` and answer it as `/Date(ms)/`."""
    try:
        wall = value.astimezone(AMSTERDAM).replace(tzinfo=timezone.utc)
    except OverflowError:
        return False
    return value >= EARLIEST and wall <= LATEST_WALL_CLOCK


def to_odata_date(value: datetime | None) -> str | None:
    """Render an aware datetime the way Exact does.

    Choice (Airbyte's reading, unconfirmed in the real API): the milliseconds encode the
    Europe/Amsterdam wall-clock time as if it were UTC, so 10:00 CEST becomes 10:00 "UTC".
    """
    if value is None:
        return None
    wall = value.astimezone(AMSTERDAM).replace(tzinfo=timezone.utc)
    return f"/Date({round(wall.timestamp() * 1000)})/"


# Amsterdam's offset per UTC day (seconds), for days without a clock change: a page renders
# thousands of dates, and zoneinfo per date was a third of a page's cost (issue 9).
_DAY = 86_400
_DAY_OFFSETS: dict[int, int | None] = {}  # day -> offset, None when the offset changes that day
_DAYS_KEPT = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _offset_at(seconds: int) -> int:
    wall = (_EPOCH + timedelta(seconds=seconds)).astimezone(AMSTERDAM)
    return round(wall.replace(tzinfo=timezone.utc).timestamp()) - seconds


def _day_offset(day: int) -> int | None:
    try:
        start, end = _offset_at(day * _DAY), _offset_at(day * _DAY + _DAY - 1)
    except OverflowError:  # the first or last day there is: no shortcut
        return None
    return start if start == end else None


def odata_date_seconds(seconds: int) -> str:
    """`to_odata_date` of the whole second `seconds` after the epoch (UTC), without building
    a datetime: the same text."""
    day = seconds // _DAY
    offset = _DAY_OFFSETS.get(day, False)
    if offset is False:
        offset = _day_offset(day)
        if len(_DAY_OFFSETS) < _DAYS_KEPT:  # bounded: real data spans a few thousand days
            _DAY_OFFSETS[day] = offset
    if offset is None:
        return to_odata_date(_EPOCH + timedelta(seconds=seconds))  # type: ignore[return-value]
    return f"/Date({(seconds + offset) * 1000})/"


def from_odata_date(text: str) -> datetime:
    """Inverse of `to_odata_date` (used by tests and the control API)."""
    ms = int(text[len("/Date("):-len(")/")])
    wall = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=AMSTERDAM)
    return wall.astimezone(timezone.utc)


def parse_local_datetime(text: str) -> datetime:
    """A `datetime'YYYY-MM-DDTHH:MM:SS'` filter literal: Amsterdam local time, no zone."""
    naive = datetime.fromisoformat(text)
    if naive.tzinfo is not None:
        raise ValueError("datetime literals carry no time zone in Exact filters")
    return naive.replace(tzinfo=AMSTERDAM).astimezone(timezone.utc)


def to_iso(value: datetime | None) -> str | None:
    """Plain ISO-8601 UTC, for the control API."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class SandboxClock:
    """Wall clock with an adjustable offset, so tests can age tokens without sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
