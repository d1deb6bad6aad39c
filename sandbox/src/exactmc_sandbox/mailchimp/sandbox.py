"""`MailchimpSandbox`: start/stop the simulator and reach into its state from Python."""

from __future__ import annotations

import secrets
from dataclasses import fields
from typing import Any

from exactmc_sandbox.common import ServiceServer
from exactmc_sandbox.mailchimp.app import create_app
from exactmc_sandbox.mailchimp.context import MailchimpContext, Settings
from exactmc_sandbox.mailchimp.control_api import member_dump
from exactmc_sandbox.mailchimp.ecommerce_api import store_to_api
from exactmc_sandbox.mailchimp.emails import subscriber_hash
from exactmc_sandbox.mailchimp.member_ops import MemberWriter, owner_source


def generate_api_key(dc: str = "us6") -> str:
    return f"{secrets.token_hex(16)}-{dc}"


class MailchimpSandbox:
    """One simulated Mailchimp account with one audience ("Exact Customers").

    Options: api_key / api_keys, oauth_token / oauth_tokens, list_id, list_name, dc,
    max_in_flight, latency, batch_start_delay, batch_operation_delay, batch_results_per_file,
    validate_webhooks. Credentials are random per instance unless given.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_keys: list[str] | None = None,
        oauth_token: str | None = None,
        oauth_tokens: list[str] | None = None,
        list_id: str | None = None,
        dc: str = "us6",
        **options: Any,
    ) -> None:
        known = {f.name for f in fields(Settings)}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown MailchimpSandbox option(s): {', '.join(sorted(unknown))}")
        keys = list(api_keys or [])
        self.api_key = api_key or (keys[0] if keys else generate_api_key(dc))
        if self.api_key not in keys:
            keys.insert(0, self.api_key)
        tokens = list(oauth_tokens or [])
        self.oauth_token = oauth_token or (tokens[0] if tokens else secrets.token_hex(16))
        if self.oauth_token not in tokens:
            tokens.insert(0, self.oauth_token)
        self.list_id = list_id or secrets.token_hex(5)
        self.settings = Settings(api_keys=keys, oauth_tokens=tokens, list_id=self.list_id,
                                 dc=dc, **options)
        self.context = MailchimpContext(self.settings)
        self.app = create_app(self.context)
        self._server: ServiceServer | None = None

    def __repr__(self) -> str:  # never show the credentials
        return f"MailchimpSandbox(url={self._url_or_none()!r}, list_id={self.list_id!r})"

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        self._server = ServiceServer(self.app, host=host, port=port)
        url = self._server.start()
        self.context.batches.start()
        self.context.webhooks.start()
        return url

    def stop(self) -> None:
        self.context.batches.stop()
        self.context.webhooks.stop()
        if self._server is not None:
            self._server.stop()

    def _url_or_none(self) -> str | None:
        return self._server.url if self._server and self._server._server else None

    @property
    def url(self) -> str:
        assert self._server is not None, "sandbox not started"
        return self._server.url

    @property
    def api_base(self) -> str:
        return f"{self.url}/3.0"

    # --- inspection and control (direct, no HTTP) -------------------------------------------
    def calls(self) -> dict[str, Any]:
        return self.context.calls.snapshot()

    def reset_calls(self) -> None:
        self.context.calls.reset()

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self.context.faults.add(**spec).as_dict()

    def clear_faults(self) -> None:
        self.context.faults.clear()

    def members(self, list_id: str | None = None) -> list[dict[str, Any]]:
        """Every member, archived included (status, merge_fields, tag names, last_changed)."""
        state = self.context.state
        with state.lock:
            lst = state.lists[list_id or self.list_id]
            return [member_dump(lst, m) for m in lst.members.values()]

    def member(self, email: str, list_id: str | None = None) -> dict[str, Any] | None:
        key = subscriber_hash(email)
        return next((m for m in self.members(list_id) if m["id"] == key), None)

    def set_member_status(self, email: str, status: str, list_id: str | None = None,
                          source: str | None = None) -> None:
        """As if the person (or an admin in Mailchimp's UI) changed it: bumps last_changed.

        `source` (for webhooks) defaults to "user" for (un)subscribes, else "admin".
        """
        state = self.context.state
        with state.lock:
            lst = state.lists[list_id or self.list_id]
            MemberWriter(state, lst, source or owner_source(status)).set_status_as_owner(
                subscriber_hash(email), status)

    def store(self, store_id: str) -> dict[str, Any]:
        state = self.context.state
        with state.lock:
            store = state.stores[store_id]
            return {"store": store_to_api(store),
                    "customers": {k: dict(v) for k, v in store.customers.items()},
                    "products": {k: dict(v) for k, v in store.products.items()},
                    "orders": {k: dict(v) for k, v in store.orders.items()}}

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every list-webhook delivery attempt: webhook_id, type, email, status, at."""
        return self.context.webhooks.log()

    def advance_clock(self, seconds: float) -> None:
        self.context.clock.advance(seconds)
