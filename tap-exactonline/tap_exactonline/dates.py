"""Exact's date formats: `/Date(ms)/` values in responses, `datetime'...'` literals in filters."""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# How to read the milliseconds of `/Date(ms)/`. Unconfirmed in the real API: Airbyte reads them
# as the Europe/Amsterdam wall clock written as if it were UTC, which is our default; "utc"
# takes them as true epoch milliseconds. A setting, so a wrong guess is a config change.
AMSTERDAM_WALL_CLOCK = "amsterdam_wall_clock"
TRUE_UTC = "utc"
DATE_INTERPRETATIONS = (AMSTERDAM_WALL_CLOCK, TRUE_UTC)

_ODATA_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH = datetime(1970, 1, 1)  # naive: the milliseconds are read as a wall clock first
_OFFSETS: dict[int, timedelta] = {}  # wall-clock hour since 1970 → Amsterdam's UTC offset


def parse_odata_date(value: str, interpretation: str = AMSTERDAM_WALL_CLOCK) -> datetime:
    """`/Date(1672531200000)/` → aware UTC datetime."""
    match = _ODATA_DATE.match(value)
    if match is None:
        raise ValueError(f"not an OData date: {value!r}")
    moment = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=timezone.utc)
    if interpretation == AMSTERDAM_WALL_CLOCK:
        # .NET's DateTime.MinValue (year 1), Exact's "no date", has no zone to apply.
        with contextlib.suppress(OverflowError):
            moment = moment.replace(tzinfo=AMSTERDAM).astimezone(timezone.utc)
    return moment


def to_iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z`, milliseconds kept when present."""
    text = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


def convert_odata_date(value: object, interpretation: str = AMSTERDAM_WALL_CLOCK) -> object:
    """Convert a response value if it is an OData date; anything else passes unchanged.

    The same text as `to_iso_utc(parse_odata_date(...))`, without the aware-datetime round
    trips: it runs for every date field of every row (hundreds of thousands per sync).
    """
    if not (isinstance(value, str) and value.startswith("/Date(")):
        return value
    match = _ODATA_DATE.match(value)
    if match is None:
        raise ValueError(f"not an OData date: {value!r}")
    ms = int(match.group(1))
    wall = _EPOCH + timedelta(milliseconds=ms)
    if interpretation == AMSTERDAM_WALL_CLOCK:
        with contextlib.suppress(OverflowError):  # year 1, Exact's "no date": no zone to apply
            wall -= _amsterdam_offset(wall, ms // 3_600_000)
    text = wall.isoformat(timespec="milliseconds")
    return (text[:-4] if text.endswith(".000") else text) + "Z"


def _amsterdam_offset(wall: datetime, hour: int) -> timedelta:
    """Amsterdam's UTC offset at a wall-clock moment, looked up once per wall-clock hour.

    Zone transitions fall on whole hours, so every moment of one wall-clock hour has the same
    offset (fold 0 in the repeated hour, as `replace(tzinfo=...)` gives); the zone lookup was
    most of the cost of a date.
    """
    offset = _OFFSETS.get(hour)
    if offset is None:
        if len(_OFFSETS) > 200_000:  # decades of hours; bounded all the same
            _OFFSETS.clear()
        offset = _OFFSETS[hour] = wall.replace(tzinfo=AMSTERDAM).utcoffset() or timedelta(0)
    return offset


def modified_filter(since: datetime, overlap_seconds: float) -> str:
    """`Modified gt datetime'...'` in Amsterdam local time (Exact filters carry no zone).

    The overlap re-reads a little of the past: clocks and second rounding can otherwise skip a
    row changed in the same second as the bookmark. Keys are stable, so re-sends are harmless.
    """
    local = (since - timedelta(seconds=overlap_seconds)).astimezone(AMSTERDAM)
    wall = local.replace(tzinfo=None)
    if local.fold == 0:
        # In October the Amsterdam clock repeats an hour: a moment in its first pass is followed
        # by moments whose wall clock is up to an hour EARLIER. Exact compares wall clocks, so
        # start before the repeated hour or those changes would be skipped.
        wall -= local.utcoffset() - local.replace(fold=1).utcoffset()
    return f"Modified gt datetime'{wall:%Y-%m-%dT%H:%M:%S}'"


def parse_iso(text: str) -> datetime:
    """An ISO-8601 string (state bookmark or start_date) → aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
