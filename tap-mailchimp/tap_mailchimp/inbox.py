"""The Mailchimp webhook inbox written by the webhook service (`exactmc-webhooks`).

One JSON object per line: `type`, `fired_at` and the event's fields, either flat (`list_id`,
`email`, `reason`, `old_email`, `new_email`, as exactmc-webhooks writes them) or under a `data`
object (as Mailchimp's form names them: `data[email]` → `data.email`). The service appends and
fsyncs; this side only reads: a missing file is no events, a torn last line (a write cut off
by a kill) and unreadable lines are skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("tap_mailchimp.inbox")


@dataclass(frozen=True)
class InboxEvent:
    type: str
    fired_at: str  # ISO-8601 UTC, `YYYY-MM-DDTHH:MM:SS+00:00`
    list_id: str | None
    fields: dict[str, Any]

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def address(self, name: str) -> str | None:
        value = self.text(name)
        return value.lower() if value and "@" in value else None


def utc_iso(value: str | datetime) -> str:
    """One textual form for every time the streams emit, so bookmarks compare as text too.

    Accepts Mailchimp's webhook form (`2026-11-27 10:00:00`, UTC), ISO with `Z` or an offset.
    """
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(
        value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def read_events(path: str | Path | None) -> Iterator[InboxEvent]:
    if not path:
        return
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return
    lines = raw.split(b"\n")
    if raw and not raw.endswith(b"\n"):
        lines = lines[:-1]  # torn: the service had not finished this line
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        event = _parse(line)
        if event is None:
            LOGGER.warning("Skipping unreadable line %d of the Mailchimp inbox", number)
            continue
        yield event


def _parse(line: bytes) -> InboxEvent | None:
    try:
        entry = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        return None
    data = entry.get("data")
    fields: dict[str, Any] = dict(data) if isinstance(data, dict) else {}
    fields.update({k: v for k, v in entry.items() if k not in ("type", "fired_at", "data")})
    try:
        fired_at = utc_iso(str(entry["fired_at"]))
    except (KeyError, ValueError):
        return None
    list_id = fields.get("list_id")
    return InboxEvent(entry["type"], fired_at, list_id if isinstance(list_id, str) else None,
                      fields)
