"""Which divisions to read, and when each last moved (`DivisionMoveDate` voids sync bookmarks)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

from tap_exactonline.client import ExactStream
from tap_exactonline.rate_limit import DailyLimitReached

if TYPE_CHECKING:
    from tap_exactonline.tap import TapExactOnline

LOGGER = logging.getLogger("tap_exactonline.divisions")


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
    """One current/Me call (only when no division is configured) and one system/Divisions."""
    configured = [int(d) for d in tap.config.get("divisions") or []]
    want_all = bool(tap.config.get("all_divisions"))
    if configured:
        anchors = configured
    else:
        me = _records(CurrentUserRequest(tap=tap), None)
        if not me or not me[0].get("CurrentDivision"):
            raise ConfigurationError("Exact's current/Me gave no CurrentDivision.")
        anchors = [int(me[0]["CurrentDivision"])]

    rows = _company_divisions(tap, anchors)
    if rows is None:  # no division has calls left today: nothing will be read anyway
        return DivisionPlan(anchors)

    move_dates = {int(row["Code"]): row.get("DivisionMoveDate") for row in rows}
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
