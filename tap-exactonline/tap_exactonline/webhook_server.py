"""The HTTP side of the webhook receiver: limits first, then verify, record, answer.

Served by waitress rather than `http.server` (which gave one thread per connection, no body
cap, no timeout, and read whatever Content-Length claimed). waitress is a maintained,
pure-Python WSGI server (no C build, no extra service) whose parser is hardened for exactly
these attacks: an asyncore loop reads every socket, so slow clients hold no thread and are
closed after `channel_timeout` of silence (a small hook here also closes those whose request
is not whole within that time: clients trickling a byte at a time); a fixed pool of `threads`
runs the app only for complete requests; `connection_limit` bounds open sockets (beyond it
new ones wait in the backlog); a Content-Length over `max_request_body_size` is answered 413
from the header alone, before any body is read; a negative or non-numeric Content-Length is
a 400; headers are capped too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from secret_store.webhook_inbox import InboxError
from singer_sdk import typing as th
from sqlalchemy.exc import SQLAlchemyError
from waitress import create_server, wasyncore

from tap_exactonline.webhooks import InvalidDelivery, WebhookInbox, verify_delivery

LOGGER = logging.getLogger("tap_exactonline.webhooks")

MAX_HEADER_BYTES = 8192  # Exact sends a handful of short headers

# Settings of `tap-exactonline-webhooks serve`, part of the tap's --about schema.
SERVE_SETTINGS = [
    th.Property("webhook_max_body_bytes", th.IntegerType, default=65536,
                description="Largest webhook delivery accepted, in bytes (Exact's are under "
                "2 KB); a larger one gets 413 without being read."),
    th.Property("webhook_client_timeout", th.IntegerType, default=10,
                description="Seconds a webhook connection may stay silent, or take to send one "
                "whole request, before it is closed."),
    th.Property("webhook_max_connections", th.IntegerType, default=100,
                description="Open connections the webhook receiver serves at once; more wait "
                "in the listen backlog."),
    th.Property("webhook_threads", th.IntegerType, default=4,
                description="Worker threads that verify and record complete webhook deliveries."),
]


@dataclass(frozen=True)
class ReceiverLimits:
    max_body_bytes: int = 65536
    client_timeout: int = 10
    max_connections: int = 100
    threads: int = 4

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ReceiverLimits:
        given = {
            "max_body_bytes": config.get("webhook_max_body_bytes"),
            "client_timeout": config.get("webhook_client_timeout"),
            "max_connections": config.get("webhook_max_connections"),
            "threads": config.get("webhook_threads"),
        }
        limits = cls(**{name: int(value) for name, value in given.items() if value is not None})
        if min(limits.max_body_bytes, limits.client_timeout, limits.max_connections,
               limits.threads) < 1:
            raise ValueError("webhook limits must be positive integers")
        return limits


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def receiver_app(secret: str, inbox: WebhookInbox, max_body_bytes: int) -> Callable[..., Any]:
    """The WSGI app: one POST per delivery, a short plain-text reason on every answer."""

    def answer(start: StartResponse, status: str, reason: str,
               extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
        body = reason.encode() + b"\n"
        start(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                       *extra])
        return [body]

    def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        if environ["REQUEST_METHOD"] != "POST":
            return answer(start, "405 Method Not Allowed", "POST only", [("Allow", "POST")])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)  # waitress lets only digits by
        except ValueError:
            length = -1
        if length < 0:
            return answer(start, "400 Bad Request", "Content-Length is invalid")
        if length > max_body_bytes:  # waitress refused it already; kept for other servers
            return answer(start, "413 Request Entity Too Large", "body too large")
        raw = environ["wsgi.input"].read(length) if length else b""
        if not raw.strip():
            return answer(start, "200 OK", "ok")  # Exact's validation call when subscribing
        try:
            content = verify_delivery(raw, secret)
        except InvalidDelivery as exc:
            LOGGER.warning("Refused a webhook delivery: %s", exc)
            status = "400 Bad Request" if exc.status == 400 else "401 Unauthorized"
            return answer(start, status, str(exc))
        try:
            added = inbox.add(content)
        except (OSError, SQLAlchemyError, InboxError):
            # Not recorded, so not acknowledged: Exact (if it retries) and polling cover it.
            LOGGER.exception("Could not record a webhook delivery in %r", inbox)
            return answer(start, "503 Service Unavailable", "inbox unavailable")
        if not added:
            LOGGER.debug("Repeated webhook delivery ignored: %s %s", content.get("Topic"),
                         content.get("Key"))
        return answer(start, "200 OK", "recorded" if added else "already recorded")

    return app


class WebhookServer:
    """waitress serving `receiver_app` on one address, with `ReceiverLimits` applied."""

    def __init__(self, host: str, port: int, secret: str, inbox: WebhookInbox | None,
                 limits: ReceiverLimits | None = None, app: Callable[..., Any] | None = None,
                 ident: str = "tap-exactonline-webhooks") -> None:
        """`app` replaces the Exact-only receiver (the `exactmc-webhooks` service routes
        several receivers through these same limits); `secret` and `inbox` are then unused."""
        limits = limits or ReceiverLimits()
        self.limits = limits
        if app is None:
            assert inbox is not None, "an inbox or an app"
            app = receiver_app(secret, inbox, limits.max_body_bytes)
        self._server = create_server(
            app,
            host=host, port=port,
            threads=limits.threads,
            connection_limit=limits.max_connections,
            channel_timeout=limits.client_timeout,
            cleanup_interval=1,  # look for silent connections every second, not every 30
            max_request_body_size=limits.max_body_bytes + 1,  # waitress refuses >= this
            max_request_header_size=MAX_HEADER_BYTES,
            asyncore_use_poll=True,  # select() breaks past 1024 descriptors
            expose_tracebacks=False,
            ident=ident,
        )
        self._close_trickling_clients(limits.client_timeout)

    def _close_trickling_clients(self, deadline: int) -> None:
        """Also close a connection whose request is still incomplete after `deadline` seconds.

        waitress only times out silence; a client sending one byte a second would hold its
        connection (and, times `max_connections`, the receiver) forever. Exact's deliveries
        are under 2 KB, so a whole request within the timeout is ample.
        """
        server = self._server
        silent_check = server.maintenance

        def maintenance(now: float) -> None:
            silent_check(now)
            for channel in list(server.active_channels.values()):
                partial = channel.request  # the request still arriving, if any
                if partial is not None:
                    started = partial.__dict__.setdefault("_first_seen", now)
                    if now - started > deadline:
                        channel.will_close = True

        server.maintenance = maintenance  # called by waitress's loop every cleanup_interval

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve_forever(self) -> None:
        self._server.run()

    def close(self) -> None:
        """Stop serving (from another thread): close every socket, then the worker threads."""
        wasyncore.close_all(self._server._map)
        self._server.task_dispatcher.shutdown(timeout=5)
