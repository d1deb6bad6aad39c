"""Delivering list webhooks: form-encoded POSTs, as Mailchimp sends them.

Choices (unconfirmed): one attempt per event (the real service retries for ~75 minutes), every
attempt logged for tests; plain http URLs are accepted. Events: subscribe, unsubscribe, cleaned,
profile, upemail, each with the source of the change (api, admin or user).
"""

from __future__ import annotations

import queue
import threading
import urllib.error
import urllib.request
from collections import deque
from typing import Any
from urllib.parse import urlencode

from exactmc_sandbox.mailchimp.clock import Clock

TIMEOUT = 10.0


def form_fields(event: str, fired_at: str, list_id: str, member: dict[str, Any],
                reason: str = "") -> dict[str, str]:
    """Mailchimp's flattened form fields: `type`, `fired_at`, `data[...]`, `data[merges][...]`."""
    fields = {"type": event, "fired_at": fired_at, "data[id]": member["id"],
              "data[list_id]": list_id, "data[email]": member["email_address"],
              "data[email_type]": "html", "data[ip_opt]": "", "data[web_id]": "0"}
    merges = {"EMAIL": member["email_address"], **member.get("merge_fields", {})}
    for tag, value in merges.items():
        if isinstance(value, dict):
            for part, text in value.items():
                fields[f"data[merges][{tag}][{part}]"] = str(text)
        else:
            fields[f"data[merges][{tag}]"] = str(value)
    if reason:
        fields["data[reason]"] = reason
    if event == "upemail":
        fields["data[new_email]"] = member["email_address"]
        fields["data[old_email]"] = member.get("old_email", "")
    return fields


def validate_url(url: str) -> str | None:
    """Mailchimp GETs the URL once when a webhook is created; None when it answered 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 (any URL)
            return None if 200 <= response.status < 300 else f"status {response.status}"
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return type(exc).__name__


class WebhookDispatcher:
    """Queues deliveries and sends them from one background thread, off the request path."""

    def __init__(self, clock: Clock, keep: int = 1000) -> None:
        self.clock = clock
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=keep)
        self._queue: queue.Queue[tuple[str, str, dict[str, str]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name="mailchimp-webhooks")
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)

    def send(self, webhook_id: str, url: str, fields: dict[str, str]) -> None:
        self._queue.put((webhook_id, url, fields))

    def log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.deliveries)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            webhook_id, url, fields = item
            request = urllib.request.Request(  # noqa: S310 (any URL, by design)
                url, data=urlencode(fields).encode(), method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "User-Agent": "MailChimp"})
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                    status: int | str = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError) as exc:
                status = type(exc).__name__
            with self._lock:
                # The webhook id, not its URL: receivers keep a secret in the URL.
                self.deliveries.append({"webhook_id": webhook_id, "type": fields["type"],
                                        "email": fields["data[email]"], "status": status,
                                        "at": self.clock.iso()})
