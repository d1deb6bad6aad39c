"""Exact webhook subscriptions: subscribe, list and remove, per division, with the tap's tokens.

`webhooks/WebhookSubscriptions` can be created, listed and deleted, never updated. Subscribing
is idempotent here: a subscription Exact already holds for the same callback and topic is kept
(a second one would deliver every change twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests

# The topics the tap polls (tap_exactonline.webhooks.TOPIC_STREAMS): what `--all-topics` means.
ALL_TOPICS = ("Accounts", "Contacts", "SalesInvoices")
PATH = "webhooks/WebhookSubscriptions"
TIMEOUT = 60  # seconds; subscribing waits for Exact's validation POST to the callback


class SubscriptionError(RuntimeError):
    """Exact refused a subscription call (the message carries its status and answer)."""


@dataclass
class Subscriptions:
    """Subscription calls for one Exact company, authenticated as the tap is."""

    config: dict[str, Any]

    def __post_init__(self) -> None:
        # Imported here: the tap imports tap_exactonline.webhooks, which imports this module.
        from tap_exactonline.tap import TapExactOnline

        self.tap = TapExactOnline(config=self.config, setup_mapper=False)

    def divisions(self, division: int | None = None) -> list[int]:
        """The one asked for, else every division the tap is configured to read."""
        return [division] if division is not None else list(self.tap.divisions)

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, url, auth=self.tap.authenticator, timeout=TIMEOUT,
                                    headers={"Accept": "application/json"}, **kwargs)
        if not response.ok:
            raise SubscriptionError(
                f"{method} {PATH} refused ({response.status_code}): {response.text[:300]}")
        return response

    def _url(self, division: int) -> str:
        return f"{self.tap.base_url}/api/v1/{division}/{PATH}"

    def listing(self, divisions: Iterable[int]) -> list[dict[str, Any]]:
        """Every subscription of each division (Exact pages with `__next`)."""
        found: list[dict[str, Any]] = []
        for division in divisions:
            url: str | None = self._url(division)
            while url:
                page = self._call("GET", url).json().get("d", {})
                for row in page.get("results", []):
                    found.append({**row, "Division": row.get("Division") or division})
                url = page.get("__next")
        return found

    def create(self, division: int, topic: str, callback: str) -> dict[str, Any]:
        return self._call("POST", self._url(division),
                          json={"CallbackURL": callback, "Topic": topic}).json().get("d", {})

    def subscribe(self, divisions: Iterable[int], topics: Iterable[str],
                  callback: str) -> list[tuple[dict[str, Any], bool]]:
        """(subscription, created?) per division and topic; existing ones are kept as they are."""
        divisions, topics = list(divisions), list(topics)
        existing = {(int(s["Division"]), s.get("Topic"), s.get("CallbackURL")): s
                    for s in self.listing(divisions)}
        outcome = []
        for division in divisions:
            for topic in topics:
                kept = existing.get((division, topic, callback))
                outcome.append((kept, False) if kept else
                               (self.create(division, topic, callback), True))
        return outcome

    def remove(self, divisions: Iterable[int], *, subscription_id: str | None = None,
               callback: str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
        """Delete the subscriptions matching every filter given; at least one is required."""
        if not (subscription_id or callback or topic):
            raise ValueError("name what to remove: an id, a callback URL or a topic")
        removed = []
        for row in self.listing(divisions):
            if ((subscription_id and str(row.get("ID")).lower() != subscription_id.lower())
                    or (callback and row.get("CallbackURL") != callback)
                    or (topic and row.get("Topic") != topic)):
                continue
            self._call("DELETE", f"{self._url(int(row['Division']))}(guid'{row['ID']}')")
            removed.append(row)
        return removed
