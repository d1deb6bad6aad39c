"""Everything one run shares: the client, the audit store, the audience and the store."""

from __future__ import annotations

import datetime
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from target_mailchimp.audience import AudienceView, SideEffects
from target_mailchimp.audience_memory import AudienceMemory
from target_mailchimp.audit import AuditStore
from target_mailchimp.auth import resolve_connection
from target_mailchimp.client import ApiError, MailchimpClient
from target_mailchimp.merge_fields import MergeFieldRegistry, parse_merge_field_map
from target_mailchimp.operations import SINGLE_BATCH_FROM, WriteExecutor
from target_mailchimp.written import WrittenRecords

LOGGER = logging.getLogger("target_mailchimp")


class ConfigurationError(Exception):
    """The settings cannot work (unknown list, missing store settings...)."""


def build_client(config: Mapping[str, Any]) -> MailchimpClient:
    base_url, auth = resolve_connection(config)
    return MailchimpClient(
        base_url,
        auth,
        max_in_flight=int(config.get("max_in_flight") or 10),
        max_tries=int(config.get("retry_max_tries") or 8),
        backoff_factor=float(config.get("retry_backoff_factor", 1.0)),
        timeout=float(config.get("request_timeout") or 120.0),
    )


class RunContext:
    def __init__(self, config: Mapping[str, Any], run_id: str | None = None) -> None:
        self.config = config
        self.run_id = run_id or str(uuid.uuid4())
        self.merge_field_map = parse_merge_field_map(config.get("merge_field_map"))
        self._store_lock = threading.Lock()
        self._store_ready = False
        # Whether a store object was ever written into the store (ecommerce.py asks once).
        self.store_written = False
        # Write-ahead notes of runs that died are settled once, before this run's own.
        self.dead_runs_settled = False
        # Our writes that moved members' last_changed, until a read of the audience confirms
        # them (own_writes.py); the audience as this run has read it.
        self.side_effects = SideEffects()
        # The audit trail's clock (failure times, healing backoff); tests move it forward.
        self.clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(
            datetime.timezone.utc)

    @cached_property
    def client(self) -> MailchimpClient:
        return build_client(self.config)

    @cached_property
    def audit(self) -> AuditStore:
        return AuditStore(self.config.get("audit_store_url"), self.run_id,
                          clock=lambda: self.clock())

    @cached_property
    def written(self) -> WrittenRecords | None:
        """Fingerprints of what this audience and store already hold (None: switched off)."""
        if not self.config.get("skip_unchanged_records", True):
            return None
        scope = f"{self.list_id}/{self.config.get('store_id') or ''}"
        return WrittenRecords(self.audit.engine, scope, self.run_id)

    @cached_property
    def executor(self) -> WriteExecutor:
        return WriteExecutor(
            self.client,
            batch_threshold=int(self.config.get("batch_operations_threshold",
                                                 SINGLE_BATCH_FROM)),
            poll_interval=float(self.config.get("batch_poll_interval", 30.0)),
        )

    @cached_property
    def audience(self) -> AudienceView:
        return AudienceView(self.client, self.list_id,
                            AudienceMemory(self.audit.engine, self.list_id))

    @property
    def batch_size(self) -> int:
        return max(1, min(int(self.config.get("batch_size") or 500), 500))

    @cached_property
    def list_id(self) -> str:
        if self.config.get("list_id"):
            return str(self.config["list_id"])
        name = self.config.get("list_name")
        if not name:
            raise ConfigurationError("Set `list_id` or `list_name`.")
        for audience in self.client.paginate("lists", "lists", {"fields": "lists.id,lists.name"}):
            if audience.get("name") == name:
                return str(audience["id"])
        raise ConfigurationError(f"No Mailchimp audience named {name!r}.")

    @cached_property
    def merge_fields(self) -> MergeFieldRegistry:
        specs = self.merge_field_map.values()
        return MergeFieldRegistry(
            self.client,
            self.list_id,
            create_missing=bool(self.config.get("create_missing_merge_fields", True)),
            types={s.tag: s.type for s in specs},
            names={s.tag: s.name for s in specs if s.name},
        )

    # --- e-commerce store ------------------------------------------------------------------

    @property
    def store_id(self) -> str:
        store_id = self.config.get("store_id")
        if not store_id:
            raise ConfigurationError("E-commerce streams need the `store_id` setting.")
        return str(store_id)

    @property
    def store_syncing(self) -> bool:
        """This run has marked the store syncing (an import): later writes go in that way."""
        return self._store_ready

    def ensure_store(self) -> str:
        """Create the store if missing; mark it syncing so automations don't fire mid-load."""
        with self._store_lock:
            if self._store_ready:
                return self.store_id
            path = f"ecommerce/stores/{self.store_id}"
            # Noted before the PATCH: if this run dies, the next one sets the flag back.
            self.audit.mark_store_syncing(self.store_id)
            try:
                # No GET first: the PATCH's 404 says the store is missing just as well.
                self.client.request("PATCH", path, body={"is_syncing": True})
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self._create_store(path)
            self._store_ready = True
            return self.store_id

    def _create_store(self, path: str) -> None:
        try:
            self.client.request("POST", "ecommerce/stores", body={
                "id": self.store_id,
                "list_id": self.list_id,
                "name": self.config.get("store_name") or self.store_id,
                "currency_code": (self.config.get("store_currency") or "EUR").upper(),
                "is_syncing": True,
            })
        except ApiError as exc:
            # A create whose answer was lost and was retried: the first try made the store.
            if exc.status != 400 or "already exists" not in exc.detail:
                raise
            self.client.request("PATCH", path, body={"is_syncing": True})
            return
        LOGGER.info("Created e-commerce store %s", self.store_id)

    def finish(self) -> None:
        """End of run: the store stops syncing so Mailchimp's automations resume.

        Also when this run never touched the store but an earlier one died while it was
        syncing: otherwise automations would stay off until the next e-commerce record.
        """
        store_id = self.config.get("store_id")
        if not store_id:
            return
        if not self._store_ready and not self.audit.store_left_syncing(str(store_id)):
            return
        try:
            self.client.request(
                "PATCH", f"ecommerce/stores/{store_id}", body={"is_syncing": False}
            )
        except ApiError as exc:
            if exc.status != 404:  # a store deleted since has no flag to reset
                raise
        self.audit.clear_store_syncing(str(store_id))
        self._store_ready = False

    def close(self) -> None:
        if self.side_effects.windows:
            from target_mailchimp.own_writes import confirm_side_effects  # imports this module

            try:
                confirm_side_effects(self)
            except Exception as exc:  # must not hide why a run stopped
                # The write-ahead notes stay: the next run reads these members back first.
                LOGGER.warning("Could not confirm this run's changes of members (%s); the "
                               "next run will.", exc)
        if "client" in self.__dict__:
            self.client.close()
        if "audit" in self.__dict__:
            self.audit.close()
