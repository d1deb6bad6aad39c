"""Validation of a member's merge field values against the audience's merge field definitions."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from exactmc_sandbox.mailchimp.errors import merge_fields_invalid
from exactmc_sandbox.mailchimp.state import AudienceList

TEXT_LIMIT = 255
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
ADDRESS_KEYS = ("addr1", "addr2", "city", "state", "zip", "country")


def _problem(tag: str, value: Any, field_type: str) -> str | None:
    """Why `value` does not fit a field of `field_type`, or None when it fits."""
    if value == "" or value is None:
        return None  # clears the field
    if field_type == "address":
        if not isinstance(value, dict):
            return "Please enter a complete address"
        missing = [k for k in ADDRESS_REQUIRED if not str(value.get(k) or "").strip()]
        if missing:
            return f"Please enter a complete address (missing {', '.join(missing)})"
        return None
    if field_type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return "Please enter a number"
        try:
            float(value)
        except ValueError:
            return "Please enter a number"
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return "Please enter a text value"
    text = str(value)
    if len(text) > TEXT_LIMIT:
        return f"Please enter a value less than {TEXT_LIMIT} characters"
    if field_type == "date":
        try:
            date.fromisoformat(text)
        except ValueError:
            return "Please enter the date in the format YYYY-MM-DD"
    if field_type == "birthday" and not re.fullmatch(r"\d{2}/\d{2}", text):
        return "Please enter the birthday in the format MM/DD"
    return None


def normalise(value: Any, field_type: str) -> Any:
    """What is stored: addresses keep only known keys (absent ones as ""), the rest as given."""
    if value is None:
        return ""
    if field_type == "address" and isinstance(value, dict):
        return {k: str(value.get(k) or "") for k in ADDRESS_KEYS}
    return value


def validate_merge_values(
    audience: AudienceList,
    values: Any,
    *,
    existing: dict[str, Any] | None,
    skip_required: bool,
) -> dict[str, Any]:
    """The validated values, normalised; ApiError "Your merge fields were invalid." otherwise.

    `existing` is what the member already holds (None for a new member): required fields may be
    satisfied by it.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise merge_fields_invalid([{"field": "merge_fields", "message": "must be an object"}])
    errors: list[dict[str, str]] = []
    clean: dict[str, Any] = {}
    for tag, value in values.items():
        definition = audience.merge_field_by_tag(str(tag).upper())
        if definition is None:
            errors.append({"field": str(tag), "message": f"Merge field {tag} does not exist"})
            continue
        problem = _problem(definition.tag, value, definition.type)
        if problem:
            errors.append({"field": definition.tag, "message": problem})
        else:
            clean[definition.tag] = normalise(value, definition.type)
    if not skip_required:
        held = dict(existing or {})
        held.update(clean)
        for definition in audience.merge_fields.values():
            if definition.required and held.get(definition.tag) in (None, ""):
                errors.append({"field": definition.tag, "message": "Please enter a value"})
    if errors:
        raise merge_fields_invalid(errors)
    return clean
