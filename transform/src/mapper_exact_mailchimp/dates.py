"""ISO-8601 date handling for the tap's UTC date strings."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_iso(value: object) -> datetime | None:
    """Parse an ISO date string (naive means UTC, as the tap emits UTC); None when absent/bad."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def newest_iso(*values: object) -> str | None:
    """The newest of several ISO dates, normalised to UTC ISO format."""
    parsed = [p for p in (parse_iso(v) for v in values) if p is not None]
    return max(parsed).astimezone(timezone.utc).isoformat() if parsed else None


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()
