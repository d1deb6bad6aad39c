"""The date-time fields of a stream's records, checked once per drain instead of parsed per record.

singer-sdk turned every date-time value of every record into a datetime (a schema walk per
record, a tenth of the target's CPU) and stopped the run on one it could not read. The writers
read the few dates they use themselves (`values.to_datetime`); here a record whose date-time
field they could not read is set apart with a clear reason, so it lands in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from singer_sdk.helpers._typing import get_datelike_property_type

from target_mailchimp.values import to_datetime


def date_fields(schema: dict[str, Any]) -> dict[str, str]:
    """The top-level properties the schema declares as date-time or date, with that kind (the
    SDK parsed top-level ones only, too)."""
    properties = schema.get("properties") or {}
    kinds = {name: get_datelike_property_type(definition) if isinstance(definition, dict)
             else None for name, definition in properties.items()}
    return {name: kind for name, kind in kinds.items() if kind in ("date-time", "date")}


def date_problem(record: dict[str, Any], fields: Iterable[str]) -> str | None:
    """Why the record's dates cannot be used, or None."""
    for name in fields:
        value = record.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or to_datetime(value) is None:
            return f"invalid date-time in {name}: {value!r}"
    return None
