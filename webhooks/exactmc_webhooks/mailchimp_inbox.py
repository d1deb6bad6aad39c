"""The Mailchimp inbox: list-webhook events, committed (synced) before the 200.

The Mailchimp table of the webhook inbox database (`secret_store.webhook_inbox`), read by
tap-mailchimp (streams `mailing_exclusions`, source `webhook`, and `email_changes`), which keeps
its own bookmark on `fired_at` and trims the events older than it. Repeats (same type, fired_at
and address) are refused by the seen keys' unique constraint, after a restart too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from secret_store.webhook_inbox import SEEN_LIMIT, InboxDatabase, inbox_url

from exactmc_webhooks.mailchimp_events import event_key


class MailchimpInbox:
    def __init__(self, location: str | Path | None = None, seen_limit: int = SEEN_LIMIT,
                 tenant: str | None = None) -> None:
        """`location`: a URL or SQLite file; None: `EXACTMC_DATABASE_URL` or the default file.
        `tenant`: whose namespace (default `EXACTMC_TENANT`; the fleet's service names it)."""
        self.url = inbox_url(str(location) if location else None)
        self._db = InboxDatabase(self.url, seen_limit, tenant=tenant)

    def __repr__(self) -> str:
        return repr(self._db)

    def add(self, event: dict[str, Any]) -> bool:
        """Record an event; False (nothing written) when it was recorded before."""
        entry = {**event, "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return self._db.add_mailchimp(entry, event_key(event))

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first."""
        return self._db.mailchimp_entries()
