"""Mailchimp list-webhook deliveries: the form body, checked and reduced to what the tap needs.

Mailchimp signs nothing, so a delivery is trusted only for arriving on the secret URL; it is
still parsed strictly (documented `type`s, a `fired_at`, an address where the type has one) and
anything else is a 400. Merge fields (names, addresses) are not kept: nothing downstream reads
them, and the inbox then holds no more personal data than the address.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

EVENT_TYPES = ("subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign")
# Events after which the way back (Mailchimp → Exact) has something to write.
TRIGGERING_TYPES = ("unsubscribe", "cleaned")
MAX_FIELD = 1000  # characters; a real address or reason is far shorter


class MalformedEvent(ValueError):
    """Not a Mailchimp list-webhook delivery: answered 400, nothing stored."""


def fired_at_utc(text: str) -> str:
    """`2026-11-27 10:00:00` (Mailchimp's form, UTC) → `2026-11-27T10:00:00Z`."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise MalformedEvent(f"fired_at is not 'YYYY-MM-DD HH:MM:SS': {text[:40]!r}") from None
    return moment.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one(fields: dict[str, list[str]], name: str, required: bool = True) -> str:
    values = fields.get(name) or []
    if len(values) > 1:
        raise MalformedEvent(f"{name} given {len(values)} times")
    value = values[0].strip() if values else ""
    if required and not value:
        raise MalformedEvent(f"{name} is missing")
    if len(value) > MAX_FIELD or any(ord(c) < 32 for c in value):
        raise MalformedEvent(f"{name} is not plain text")
    return value


def _address(fields: dict[str, list[str]], name: str) -> str:
    value = _one(fields, name).lower()  # as Mailchimp holds it
    if "@" not in value or any(c.isspace() for c in value):
        raise MalformedEvent(f"{name} is not an email address")
    return value


def parse_event(body: bytes) -> dict[str, Any]:
    """The inbox entry of one form-encoded delivery, or MalformedEvent."""
    try:
        text = body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=True,
                          max_num_fields=500)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedEvent("body is not a form (application/x-www-form-urlencoded)") from exc
    kind = _one(fields, "type")
    if kind not in EVENT_TYPES:
        raise MalformedEvent(f"type {kind[:40]!r} is not a list-webhook event")
    raw_fired_at = _one(fields, "fired_at")
    event: dict[str, Any] = {"type": kind, "fired_at": fired_at_utc(raw_fired_at),
                             "list_id": _one(fields, "data[list_id]", required=False) or None}
    if kind == "upemail":
        event["old_email"] = _address(fields, "data[old_email]")
        event["new_email"] = _address(fields, "data[new_email]")
    elif kind == "campaign":
        event["campaign_id"] = _one(fields, "data[id]", required=False) or None
    else:
        event["email"] = _address(fields, "data[email]")
        event["reason"] = _one(fields, "data[reason]", required=False) or None
    return event


def event_key(event: dict[str, Any]) -> str:
    """The repeat key: (type, fired_at, address); a re-sent delivery is the same event."""
    address = event.get("email") or event.get("old_email") or event.get("campaign_id") or ""
    basis = json.dumps([event["type"], event["fired_at"], address])
    return hashlib.sha256(basis.encode()).hexdigest()
