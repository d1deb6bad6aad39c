"""The fleet's routes: `/exact/<tenant>` and `/mailchimp/<tenant>/<secret>`.

Each is the single-company receiver (same verification, limits, answers) built for the tenant
named in the path: its secret, its inbox, its run requests. Nothing is recorded for a tenant
that is unknown, removed or without a secret, and its answers are those of a registered tenant
for the same request, so that probing `/exact/<name>` does not tell which companies the fleet
serves: a delivery is refused as unsigned (401; its signature is checked against a random
secret), an empty POST (Exact's handshake) is answered 200, a GET 405. Likewise a
`/mailchimp/<tenant>/<secret>` with an unknown tenant answers 404, as a wrong secret does.
A name that can never be a tenant (not a valid tenant name) answers 404 like an unknown path.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from secret_store import SecretStoreError
from secret_store.database import is_tenant_name
from secret_store.webhook_inbox import InboxDatabase, InboxError
from sqlalchemy.exc import SQLAlchemyError
from tap_exactonline.webhook_server import receiver_app

from exactmc_webhooks.app import (
    LOGGER,
    MAILCHIMP_PREFIX,
    NotifyingInbox,
    StartResponse,
    answer,
    mailchimp_app,
)
from exactmc_webhooks.mailchimp_events import TRIGGERING_TYPES
from exactmc_webhooks.mailchimp_inbox import MailchimpInbox
from exactmc_webhooks.tenants import EXACT_JOB, MAILCHIMP_JOB, FleetTenants

EXACT_PREFIX = "/exact/"


class PinnedInboxDatabase(InboxDatabase):
    """A tenant's inbox database holding on to its engine until `close`: `engine_for` keeps
    only 64 engines, fewer than a fleet's tenants, and would make (and leak) new ones."""

    _pinned: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._pinned is None:
            self._pinned = super().engine
        return self._pinned

    def close(self) -> None:
        if self._pinned is not None:
            self._pinned.dispose()  # its idle connections; one in use closes when returned


class TenantExactInbox(NotifyingInbox):
    """The tap's Exact inbox in `tenant`'s namespace (the service serves many tenants)."""

    def __init__(self, url: str, tenant: str, on_added: Callable[[], None]) -> None:
        super().__init__(url, on_added)
        self._db = PinnedInboxDatabase(self.url, self._db.seen_limit, tenant=tenant)

    def close(self) -> None:
        self._db.close()


class TenantMailchimpInbox(MailchimpInbox):
    def __init__(self, url: str, tenant: str) -> None:
        super().__init__(url, tenant=tenant)
        self._db = PinnedInboxDatabase(self.url, self._db.seen_limit, tenant=tenant)

    def close(self) -> None:
        self._db.close()


class _NoInbox:
    """Where an unregistered tenant's deliveries would go: nowhere (a delivery cannot pass
    the random secret's check to get here; should one, it is refused, not recorded)."""

    def add(self, content: dict[str, Any]) -> bool:
        raise InboxError("no such tenant")


def tenant_path(path: str) -> tuple[str, str, str] | None:
    """`(kind, tenant, rest)` of a fleet route, else None."""
    if path.startswith(EXACT_PREFIX):
        tenant, slash, _ = path[len(EXACT_PREFIX):].partition("/")
        return ("exact", tenant, "") if tenant and not slash else None
    if path.startswith(MAILCHIMP_PREFIX):
        tenant, slash, secret = path[len(MAILCHIMP_PREFIX):].partition("/")
        if tenant and slash and secret and "/" not in secret:
            return "mailchimp", tenant, secret
    return None


def is_tenant_path(path: str) -> bool:
    return tenant_path(path) is not None


def tenant_app(tenants: FleetTenants, max_body_bytes: int) -> Callable[..., Any]:
    # Answers for a tenant that is not served, the same as a served one's (module docstring).
    decoy = receiver_app(secrets.token_urlsafe(32), _NoInbox(), max_body_bytes)  # type: ignore[arg-type]

    def exact(name: str, environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        if not is_tenant_name(name):
            return answer(start, "404 Not Found", "not found")
        entry = tenants.tenant(name)
        secret = tenants.exact_secret(entry) if entry else None
        if entry is None or not secret:
            return decoy(environ, start)
        inbox = tenants.inbox("exact", name, lambda url, tenant: TenantExactInbox(
            url, tenant, lambda: tenants.request_run(tenant, EXACT_JOB)))
        return receiver_app(secret, inbox, max_body_bytes)(environ, start)

    def mailchimp(name: str, given: str, environ: dict[str, Any],
                  start: StartResponse) -> list[bytes]:
        entry = tenants.tenant(name)
        secret = tenants.mailchimp_secret(entry) if entry else None
        if entry is None or not secret:
            return answer(start, "404 Not Found", "not found")
        inbox = tenants.inbox("mailchimp", name,
                              lambda url, tenant: TenantMailchimpInbox(url, tenant))

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] in TRIGGERING_TYPES:
                tenants.request_run(name, MAILCHIMP_JOB)

        # The single-company app checks `/mailchimp/<secret>` (in constant time).
        app = mailchimp_app(secret, inbox, max_body_bytes, on_event)
        return app({**environ, "PATH_INFO": MAILCHIMP_PREFIX + given}, start)

    def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
        route = tenant_path(environ.get("PATH_INFO", ""))
        if route is None:
            return answer(start, "404 Not Found", "not found")
        kind, name, rest = route
        try:
            if kind == "exact":
                return exact(name, environ, start)
            return mailchimp(name, rest, environ, start)
        except (OSError, SQLAlchemyError, InboxError, SecretStoreError):  # database down
            LOGGER.exception("Could not look up tenant %r", name)
            return answer(start, "503 Service Unavailable", "tenant lookup unavailable")

    return app
