"""Which divisions to read, and when each last moved (`DivisionMoveDate` voids sync bookmarks)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

from tap_exactonline.client import ExactStream
from tap_exactonline.dates import parse_iso, to_iso_utc
from tap_exactonline.rate_limit import DailyLimitReached

if TYPE_CHECKING:
    from tap_exactonline.tap import TapExactOnline

LOGGER = logging.getLogger("tap_exactonline.divisions")

# Top-level state key: the last division check (when, each division's DivisionMoveDate, and the
# user's current division if current/Me was asked). Kept between runs like the bookmarks.
CHECK_STATE_KEY = "exact_division_check"


class ConfigurationError(Exception):
    """The settings ask for something this Exact company does not have."""


class CurrentUserRequest(ExactStream):
    """`current/Me`: the user's current division (the only URL without a division)."""

    name = "_current_me"
    path = "/current/Me"
    select_fields = ("CurrentDivision",)
    schema = th.PropertiesList(th.Property("CurrentDivision", th.IntegerType)).to_dict()


class DivisionsRequest(ExactStream):
    """`system/Divisions`: every division of the company, with its DivisionMoveDate."""

    name = "_divisions"
    path = "/{division}/system/Divisions"
    select_fields = ("Code", "Description", "DivisionMoveDate")
    schema = th.PropertiesList(
        th.Property("Code", th.IntegerType),
        th.Property("Description", th.StringType),
        th.Property("DivisionMoveDate", th.DateTimeType),
    ).to_dict()


@dataclass
class DivisionPlan:
    divisions: list[int]
    # Division → ISO DivisionMoveDate (None: never moved). Absent: could not be read.
    move_dates: dict[int, str | None] = field(default_factory=dict)


def _records(stream: ExactStream, context: dict[str, Any] | None) -> list[dict[str, Any]]:
    # request_records brings paging, pacing and retries; post_process converts the dates.
    return [stream.post_process(row, context) or {} for row in stream.request_records(context)]


def plan_divisions(tap: TapExactOnline) -> DivisionPlan:
    """One current/Me call (only when no division is configured) and one system/Divisions,
    or none while the last check, kept in the state, is younger than `division_check_interval`.
    """
    configured = [int(d) for d in tap.config.get("divisions") or []]
    want_all = bool(tap.config.get("all_divisions"))
    cached = _cached_plan(tap, configured, want_all)
    if cached is not None:
        return cached
    checked_at = time.time()
    current = None
    if configured:
        anchors = configured
    else:
        me = _records(CurrentUserRequest(tap=tap), None)
        if not me or not me[0].get("CurrentDivision"):
            raise ConfigurationError("Exact's current/Me gave no CurrentDivision.")
        current = int(me[0]["CurrentDivision"])
        anchors = [current]

    rows = _company_divisions(tap, anchors)
    if rows is None:  # no division has calls left today: nothing will be read anyway
        return DivisionPlan(anchors)

    move_dates = {int(row["Code"]): row.get("DivisionMoveDate") for row in rows}
    _remember(tap, checked_at, move_dates, current)
    if want_all:
        return DivisionPlan(sorted(move_dates), move_dates)
    unknown = [d for d in configured if d not in move_dates]
    if unknown:
        raise ConfigurationError(
            f"Division(s) {unknown} are not in this Exact company (it has {sorted(move_dates)})."
        )
    return DivisionPlan(anchors, move_dates)


def _company_divisions(tap: TapExactOnline, anchors: list[int]) -> list[dict[str, Any]] | None:
    """system/Divisions, asked of the first anchor division that still has calls today.

    Any division of the company lists them all. Skipping the list because the first one is out
    of calls would leave the others' DivisionMoveDate unknown, and a moved division would then
    be read from bookmarks that no longer mean anything.
    """
    for anchor in anchors:
        try:
            return _records(DivisionsRequest(tap=tap), {"division": anchor})
        except DailyLimitReached:
            LOGGER.warning("Division %s has no calls left today; asking another.", anchor)
    return None


def _cached_plan(tap: TapExactOnline, configured: list[int],
                 want_all: bool) -> DivisionPlan | None:
    """The plan from the last check in the state, while it is younger than the interval.

    A move found up to an interval late costs no data: the sandbox and Exact renumber row
    versions, so until the check the old bookmarks read little or nothing, and the check then
    drops them and reads the division in full. The default interval, 0, checks every run.
    """
    interval = float(tap.config.get("division_check_interval") or 0)
    check = (tap.state or {}).get(CHECK_STATE_KEY)
    if interval <= 0 or not isinstance(check, dict):
        return None
    try:
        age = time.time() - parse_iso(str(check["checked_at"])).timestamp()
    except (KeyError, ValueError):
        return None
    if not 0 <= age < interval:  # stale, or from a clock ahead of ours
        return None
    move_dates = {int(d): date for d, date in (check.get("move_dates") or {}).items()}
    if want_all:
        divisions = sorted(move_dates)
    elif configured:
        divisions = configured
    elif check.get("current") is not None:
        divisions = [int(check["current"])]
    else:
        return None
    if not divisions or any(d not in move_dates for d in divisions):
        return None  # a division the last check did not list: ask Exact (and fail clearly)
    LOGGER.info("Divisions as checked %.0f s ago (division_check_interval %.0f s): no call.",
                age, interval)
    return DivisionPlan(divisions, move_dates)


def _remember(tap: TapExactOnline, checked_at: float, move_dates: dict[int, str | None],
              current: int | None) -> None:
    check: dict[str, Any] = {
        # Text, as every bookmark: a float would reach the targets as a Decimal (they read
        # numbers exactly) and break their JSON state.
        "checked_at": to_iso_utc(datetime.fromtimestamp(checked_at, timezone.utc)),
        "move_dates": {str(d): date for d, date in move_dates.items()},
    }
    if current is not None:
        check["current"] = current
    tap.state[CHECK_STATE_KEY] = check
