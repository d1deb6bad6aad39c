"""The service assembled: secrets, inboxes, debounced triggers and the waitress server."""

from __future__ import annotations

import logging
import threading
from typing import Any

from tap_exactonline.webhook_server import ReceiverLimits, WebhookServer

from exactmc_webhooks.app import NotifyingInbox, build_app
from exactmc_webhooks.callback_secrets import exact_secret, mailchimp_secret
from exactmc_webhooks.mailchimp_inbox import MailchimpInbox
from exactmc_webhooks.tenant_routes import is_tenant_path, tenant_app
from exactmc_webhooks.tenants import FleetTenants
from exactmc_webhooks.trigger import Debouncer, command_runner

LOGGER = logging.getLogger("exactmc_webhooks")


class NothingToServe(Exception):
    """Neither secret is in the store: no delivery could ever be accepted."""


def _debouncer(name: str, command: str, config: dict[str, Any]) -> Debouncer | None:
    if not command.strip():
        return None
    return Debouncer(name, command_runner(command), debounce=config["debounce_seconds"],
                     max_delay=config["max_delay_seconds"],
                     backoff=config["retry_backoff_seconds"],
                     min_interval=config["min_interval_seconds"])


class WebhookService:
    def __init__(self, config: dict[str, Any], host: str = "127.0.0.1", port: int = 0) -> None:
        self.exact_secret = exact_secret(config)
        self.mailchimp_secret = mailchimp_secret(config)
        # Fleet mode: every registered tenant on its own routes (`tenant_routes`).
        self.fleet = FleetTenants(config) if config.get("fleet") else None
        if not self.exact_secret and not self.mailchimp_secret and self.fleet is None:
            raise NothingToServe(
                "No webhook secret in the store: `meltano invoke tap-exactonline:set-credential "
                "webhook_secret` (Exact) and/or `exactmc-webhooks mailchimp-url` (Mailchimp).")
        self.limits = ReceiverLimits.from_config(config)
        self.exact_trigger = _debouncer("exact", config["trigger_command"] or "", config)
        self.mailchimp_trigger = _debouncer(
            "mailchimp", config["mailchimp_trigger_command"] or "", config)
        exact_inbox = None
        if self.exact_secret:
            notify = self.exact_trigger.notify if self.exact_trigger else (lambda: None)
            exact_inbox = NotifyingInbox(
                config["inbox_url"] or config["webhook_inbox_path"], notify)
            if exact_inbox.pending():  # recorded before a restart, not yet covered by a run
                notify()
        self.mailchimp_inbox = MailchimpInbox(
            config["inbox_url"] or config["mailchimp_inbox_path"])
        on_mailchimp = (self.mailchimp_trigger.notify if self.mailchimp_trigger
                        else (lambda: None))
        tenants = None
        if self.fleet is not None:
            tenants = (is_tenant_path, tenant_app(self.fleet, self.limits.max_body_bytes))
        app = build_app(self.exact_secret, exact_inbox, self.mailchimp_secret,
                        self.mailchimp_inbox, self.limits.max_body_bytes, on_mailchimp,
                        tenants)
        self.server = WebhookServer(host, port, "", None, self.limits, app=app,
                                    ident="exactmc-webhooks")
        self.pending_sweep: threading.Thread | None = None
        if self.fleet is not None:  # in the background: a large fleet's sweep takes a while
            self.pending_sweep = threading.Thread(target=self._request_pending, daemon=True,
                                                  name="fleet-pending")
            self.pending_sweep.start()

    def _request_pending(self) -> None:
        assert self.fleet is not None
        try:
            asked = self.fleet.request_pending()
        except Exception:  # the registry unreachable at start: the schedules cover it
            LOGGER.exception("Could not look for deliveries pending before the start")
            return
        if asked:
            LOGGER.info("Runs asked for tenants with deliveries pending since before the "
                        "start: %s", ", ".join(asked))

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def describe(self) -> str:
        routes = []
        if self.exact_secret:
            routes.append(f"Exact on {self.url}/exact")
        if self.mailchimp_secret:
            routes.append(f"Mailchimp on {self.url}/mailchimp/<secret>")
        if self.fleet is not None:
            routes.append(self.fleet.describe())
        return "Receiving webhooks: " + "; ".join(routes)

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start(self) -> threading.Thread:
        """Serve from a background thread (tests, embedding)."""
        thread = threading.Thread(target=self.serve_forever, daemon=True, name="webhooks")
        thread.start()
        return thread

    def close(self) -> None:
        self.server.close()
        for trigger in (self.exact_trigger, self.mailchimp_trigger):
            if trigger is not None:
                trigger.stop()
