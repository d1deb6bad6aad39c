"""Small conversions of incoming record values."""

from __future__ import annotations

import datetime
import re
from typing import Any

# Deliberately loose: Mailchimp has the final say, this only catches what cannot be an address.
EMAIL_PATTERN = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def to_datetime(value: Any) -> datetime.datetime | None:
    """singer-sdk may already have parsed date-times; naive values are taken as UTC."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, datetime.date):
        parsed = datetime.datetime.combine(value, datetime.time())
    else:
        try:
            parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def iso(value: Any) -> str | None:
    """ISO-8601 UTC with seconds, the form Mailchimp's *_foreign fields and filters take."""
    parsed = to_datetime(value)
    if parsed is None:
        return None
    return parsed.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat()


def normalise_email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if EMAIL_PATTERN.match(email) else None


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
