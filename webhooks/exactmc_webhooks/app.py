"""The WSGI app: `/exact` (the tap's verified receiver) and `/mailchimp/<secret>`; in fleet
mode also the per-tenant routes (`tenant_routes`).

Both record a delivery durably before answering 200, treat a repeat as a no-op, and call
`on_exact` / `on_mailchimp` only for a delivery that was new (that is what starts a run).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from typing import Any

from secret_store.webhook_inbox import InboxError
from sqlalchemy.exc import SQLAlchemyError
from tap_exactonline.webhook_server import receiver_app
from tap_exactonline.webhooks import WebhookInbox

from exactmc_webhooks.mailchimp_events import TRIGGERING_TYPES, MalformedEvent, parse_event
from exactmc_webhooks.mailchimp_inbox import MailchimpInbox

LOGGER = logging.getLogger("exactmc_webhooks")
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
MAILCHIMP_PREFIX = "/mailchimp/"
FORM = "application/x-www-form-urlencoded"


class NotifyingInbox(WebhookInbox):
    """The tap's Exact inbox, calling `on_added` after each newly recorded delivery."""

    def __init__(self, location: str | None, on_added: Callable[[], None]) -> None:
        super().__init__(location)
        self._on_added = on_added

    def add(self, content: dict[str, Any]) -> bool:
        added = super().add(content)
        if added:
            self._on_added()
        return added


def answer(start: StartResponse, status: str, reason: str,
           extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    body = reason.encode() + b"\n"
    start(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                   *extra])
    return [body]


def mailchimp_app(secret: str, inbox: MailchimpInbox, max_body_bytes: int,
                  on_event: Callable[[dict[str, Any]], None]) -> Callable[..., Any]:
    expected = secret.encode()

    def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        given = environ.get("PATH_INFO", "")[len(MAILCHIMP_PREFIX):].encode(
            "latin-1", "replace")
        if not hmac.compare_digest(given, expected):  # constant time: no guessing by timing
            return answer(start, "404 Not Found", "not found")
        method = environ["REQUEST_METHOD"]
        if method in ("GET", "HEAD"):
            return answer(start, "200 OK", "ok")  # Mailchimp's validation when registering
        if method != "POST":
            return answer(start, "405 Method Not Allowed", "GET or POST",
                          [("Allow", "GET, POST")])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return answer(start, "400 Bad Request", "Content-Length is invalid")
        if length > max_body_bytes:  # waitress refused it already; kept for other servers
            return answer(start, "413 Request Entity Too Large", "body too large")
        if not environ.get("CONTENT_TYPE", "").lower().startswith(FORM):
            return answer(start, "400 Bad Request", f"expected {FORM}")
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            event = parse_event(raw)
        except MalformedEvent as exc:
            LOGGER.warning("Refused a Mailchimp delivery: %s", exc)
            return answer(start, "400 Bad Request", str(exc))
        try:
            added = inbox.add(event)
        except (OSError, SQLAlchemyError, InboxError):  # not recorded, so not acknowledged
            LOGGER.exception("Could not record a Mailchimp delivery in %r", inbox)
            return answer(start, "503 Service Unavailable", "inbox unavailable")
        if added:
            on_event(event)
        return answer(start, "200 OK", "recorded" if added else "already recorded")

    return app


def service_app(exact: Callable[..., Any] | None,
                mailchimp: Callable[..., Any] | None,
                tenants: tuple[Callable[[str], bool], Callable[..., Any]] | None = None,
                ) -> Callable[..., Any]:
    """Route by path; a receiver not configured answers 404 like an unknown path.
    `tenants`: (is its path, app) of the fleet's per-tenant routes, tried first."""

    def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if tenants is not None and tenants[0](path):
            return tenants[1](environ, start)
        if path == "/exact" and exact is not None:
            return exact(environ, start)
        if path.startswith(MAILCHIMP_PREFIX) and mailchimp is not None:
            return mailchimp(environ, start)
        return answer(start, "404 Not Found", "not found")

    return app


def build_app(exact_secret: str | None, exact_inbox: WebhookInbox | None,
              mailchimp_secret: str | None, mailchimp_inbox: MailchimpInbox | None,
              max_body_bytes: int, on_mailchimp: Callable[[], None],
              tenants: tuple[Callable[[str], bool], Callable[..., Any]] | None = None,
              ) -> Callable[..., Any]:
    exact = None
    if exact_secret and exact_inbox is not None:
        exact = receiver_app(exact_secret, exact_inbox, max_body_bytes)
    mailchimp = None
    if mailchimp_secret and mailchimp_inbox is not None:
        def on_event(event: dict[str, Any]) -> None:
            if event["type"] in TRIGGERING_TYPES:
                on_mailchimp()

        mailchimp = mailchimp_app(mailchimp_secret, mailchimp_inbox, max_body_bytes, on_event)
    return service_app(exact, mailchimp, tenants)
