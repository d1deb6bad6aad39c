"""The Mailchimp webhook inbox written by the webhook service (`exactmc-webhooks`).

The Mailchimp table of the webhook inbox database (`secret_store.webhook_inbox`): a SQLAlchemy
URL or SQLite file (`mailchimp_inbox_url`, else the deprecated `mailchimp_inbox_path`), else
`EXACTMC_DATABASE_URL` (the tenant's schema), else `$MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite`,
the service's default. Each entry is one event: `type`, `fired_at` and its fields, either flat
(`list_id`, `email`, `reason`, `old_email`, `new_email`, as exactmc-webhooks writes them) or
under a `data` object (as Mailchimp's form names them: `data[email]` → `data.email`). A file
never written is no events (and is not created); an unreadable entry is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from secret_store.webhook_inbox import InboxDatabase, inbox_url

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


def inbox_location(config: dict[str, Any]) -> str | None:
    """The inbox setting (`mailchimp_inbox_url`, else the deprecated `mailchimp_inbox_path`)."""
    return config.get("mailchimp_inbox_url") or config.get("mailchimp_inbox_path") or None


def open_inbox(location: str | None) -> InboxDatabase:
    return InboxDatabase(inbox_url(location))


def read_events(inbox: InboxDatabase) -> Iterator[InboxEvent]:
    for number, entry in enumerate(inbox.mailchimp_entries(), 1):
        event = _parse(entry)
        if event is None:
            LOGGER.warning("Skipping unreadable entry %d of the Mailchimp inbox", number)
            continue
        yield event


def _parse(entry: Any) -> InboxEvent | None:
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
