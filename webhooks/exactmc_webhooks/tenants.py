"""Fleet mode: one service for every tenant of the fleet's registry.

Per tenant: its registry entry (known? paused?), its two webhook secrets (the store's
`<tenant>.` documents), its inboxes (`InboxDatabase(url, tenant=...)`) and its runs, asked of
Dagster through the fleet's `run_requests` table rather than started here.

Why the fleet's own `TenantRegistry` and `RunRequests` (imported only in fleet mode, so a single
company needs no `exactmc-fleet`): the registry's table and the requests' semantics belong to
the fleet package; a second reader of those tables here would drift from them silently.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from secret_store import SecretStore, store_key
from secret_store.database import DATABASE_URL_ENV, is_tenant_name, sqlite_url
from secret_store.webhook_inbox import InboxDatabase, InboxError
from sqlalchemy.exc import SQLAlchemyError
from tap_exactonline.credentials import credentials_name

from exactmc_webhooks.callback_secrets import FIELD

LOGGER = logging.getLogger("exactmc_webhooks")
EXACT_JOB = "exactonline-to-mailchimp"
MAILCHIMP_JOB = "mailchimp-to-exactonline"
REGISTRY_TTL = 5.0  # a pause or removal is noticed this soon (the sensor re-checks anyway)
MISS_RELOAD = 1.0  # an unknown name re-reads the registry at most this often (a new tenant)
SECRET_TTL = 60.0  # a rotated or newly stored secret is picked up this soon
CACHE_SIZE = 1024  # tenants whose secrets are kept
# Tenants whose inbox handles (each its own engine and pool: on PostgreSQL the tenant's schema
# is the connection's search_path) are kept; an evicted one's connections are closed, so the
# service holds about this many idle connections however large the fleet.
INBOX_CACHE = 32

V = TypeVar("V")


class FleetUnavailable(Exception):
    """Fleet mode cannot start (the fleet package missing, an inbox URL tenants would share)."""


class BoundedCache(Generic[V]):
    """Least-recently-used values, each kept at most `ttl` seconds."""

    def __init__(self, size: int, ttl: float = float("inf"),
                 on_evict: Callable[[V], None] | None = None) -> None:
        self.size, self.ttl, self.on_evict = size, ttl, on_evict
        self._items: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[1] < self.ttl:
                self._items.move_to_end(key)
                return hit[0]
        value = make()  # outside the lock: a store read must not hold up other tenants
        evicted = []
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                evicted.append(old[0])
            self._items[key] = (value, now)
            while len(self._items) > self.size:
                evicted.append(self._items.popitem(last=False)[1][0])
        for gone in evicted:
            if self.on_evict is not None and gone is not value:
                self.on_evict(gone)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class TenantEntry:
    name: str
    client_id: str
    token_store_name: str | None
    paused: bool


def project_root() -> Path:
    return Path(os.environ.get("MELTANO_PROJECT_ROOT") or ".").resolve()


class FleetTenants:
    """The registry's tenants as the service needs them, cached per tenant with a bound."""

    def __init__(self, config: dict[str, Any]) -> None:
        try:
            from exactmc_fleet.dagster.requests import RunRequests, project_registry_url
            from exactmc_fleet.registry import TenantRegistry
            from exactmc_fleet.runner import tenant_sys_dir
        except ImportError as exc:
            raise FleetUnavailable(
                f"fleet mode needs the fleet package (pip install -e ./fleet): {exc}") from None
        self.config = config
        self.registry_url = config.get("fleet_registry_url") or project_registry_url()
        self._registry = TenantRegistry(self.registry_url)
        self._requests = RunRequests(self.registry_url)
        self._sys_dir = tenant_sys_dir
        self._inbox_url = self._check_inbox_url(config.get("inbox_url"))
        self.exact_runs = bool((config.get("trigger_command") or "").strip())
        self.mailchimp_runs = bool((config.get("mailchimp_trigger_command") or "").strip())
        self._snapshot: dict[str, TenantEntry] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self._secrets: BoundedCache[str | None] = BoundedCache(CACHE_SIZE, SECRET_TTL)
        self._inboxes: BoundedCache[Any] = BoundedCache(
            INBOX_CACHE, on_evict=lambda inbox: inbox.close())

    @staticmethod
    def _check_inbox_url(setting: str | None) -> str | None:
        if not setting:
            return None
        url = setting if "://" in setting else sqlite_url(setting)
        shared = os.environ.get(DATABASE_URL_ENV, "").strip()
        # A store's own SQLite file has no namespaces: every tenant would read the others'.
        if sa.engine.make_url(url).get_backend_name() == "sqlite" and url != shared:
            raise FleetUnavailable(
                "fleet mode: inbox_url is one SQLite file, which tenants would share; leave it "
                f"empty ({DATABASE_URL_ENV}, else each tenant's own file) or use PostgreSQL.")
        return url

    # -- the registry ------------------------------------------------------------------------
    def tenant(self, name: str) -> TenantEntry | None:
        """`name`'s entry, None when unknown or removed (re-read every few seconds)."""
        if not is_tenant_name(name):
            return None
        now = time.monotonic()
        with self._lock:
            age = now - self._loaded_at
            known = name in self._snapshot
        if age >= REGISTRY_TTL or (not known and age >= MISS_RELOAD):
            self._reload()
        return self._snapshot.get(name)

    def _reload(self) -> None:
        # One query for the whole fleet: unknown names (scanners) cost no query each.
        snapshot = {t.name: TenantEntry(t.name, t.exact_client_id,
                                        t.settings.get("TAP_EXACTONLINE_TOKEN_STORE_NAME"),
                                        t.paused)
                    for t in self._registry.all()}
        with self._lock:
            self._snapshot, self._loaded_at = snapshot, time.monotonic()

    def forget(self) -> None:
        """Re-read the registry and the secrets at the next delivery."""
        with self._lock:
            self._loaded_at = float("-inf")
        self._secrets.clear()

    # -- secrets -----------------------------------------------------------------------------
    def _store(self, tenant: str) -> SecretStore | None:
        key = store_key(self.config, "secret_store_key")
        return SecretStore(self.config.get("secret_store_path"), key, tenant=tenant) if key \
            else None

    def exact_secret(self, entry: TenantEntry) -> str | None:
        def read() -> str | None:
            store = self._store(entry.name)
            if store is None:
                return None
            name = credentials_name({"client_id": entry.client_id,
                                     "token_store_name": entry.token_store_name})
            return (store.read(name) or {}).get("webhook_secret") or None

        return self._secrets.get(("exact", entry.name, entry.client_id,
                                  entry.token_store_name), read)

    def mailchimp_secret(self, entry: TenantEntry) -> str | None:
        def read() -> str | None:
            store = self._store(entry.name)
            if store is None:
                return None
            return (store.read(self.config["mailchimp_secret_name"]) or {}).get(FIELD) or None

        return self._secrets.get(("mailchimp", entry.name), read)

    # -- inboxes -----------------------------------------------------------------------------
    def inbox_url(self, tenant: str) -> str:
        """The URL `tenant`'s taps find by default: `inbox_url` / EXACTMC_DATABASE_URL
        (namespaced per tenant), else the tenant's own file under its system directory."""
        shared = os.environ.get(DATABASE_URL_ENV, "").strip()
        if self._inbox_url or shared:
            return self._inbox_url or shared
        return sqlite_url(self._sys_dir(project_root(), tenant) / "webhooks" / "inbox.sqlite")

    def inbox(self, kind: str, tenant: str, make: Callable[[str, str], Any]) -> Any:
        """`make(url, tenant)`, once per (kind, tenant) while cached."""
        return self._inboxes.get((kind, tenant), lambda: make(self.inbox_url(tenant), tenant))

    # -- runs --------------------------------------------------------------------------------
    def request_run(self, tenant: str, job: str) -> None:
        """Ask Dagster for `tenant`'s `job` (one row per tenant and job: a burst is one run);
        a paused tenant's delivery stays in its inbox for the run after it resumes."""
        if not (self.exact_runs if job == EXACT_JOB else self.mailchimp_runs):
            return
        entry = self.tenant(tenant)
        if entry is None or entry.paused:
            LOGGER.info("Tenant %s is paused: delivery recorded, no run asked for", tenant)
            return
        try:
            self._requests.request(tenant, job)
        except SQLAlchemyError:  # recorded already: the schedule covers it
            LOGGER.exception("Could not ask for %s's %s run", tenant, job)

    def request_pending(self) -> list[str]:
        """At start: ask for a forward run of each active tenant whose Exact inbox still holds
        deliveries (recorded before a restart, their request perhaps never written), as the
        single-company service does; the tenants asked for."""
        if not self.exact_runs:
            return []
        self._reload()
        asked = []
        for entry in list(self._snapshot.values()):
            if entry.paused:
                continue
            inbox = InboxDatabase(self.inbox_url(entry.name), tenant=entry.name)
            try:
                if inbox.exact_entries():
                    self.request_run(entry.name, EXACT_JOB)
                    asked.append(entry.name)
            except (OSError, SQLAlchemyError, InboxError):
                LOGGER.exception("Could not read %s's inbox at start", entry.name)
            finally:
                if not inbox.missing():
                    inbox.engine.dispose()  # one sweep over the fleet keeps no connections
        return asked

    def describe(self) -> str:
        return (f"tenants of {sa.engine.make_url(self.registry_url).render_as_string()} "
                "on /exact/<tenant> and /mailchimp/<tenant>/<secret>, runs asked of Dagster")
