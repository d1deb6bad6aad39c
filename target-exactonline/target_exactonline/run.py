"""What one run shares: the config, the Exact client (tap's auth and pacing), divisions, audit."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from secret_store import SecretStoreError
from tap_exactonline.auth import ExactAuthenticator
from tap_exactonline.credentials import token_store_name
from tap_exactonline.rate_limit import RateLimiter
from tap_exactonline.tap import resolve_base_url
from tap_exactonline.token_store import TokenStore

from target_exactonline.audit import AuditTrail
from target_exactonline.client import ExactClient
from target_exactonline.tag_names import MailchimpTags


class ConfigurationError(Exception):
    """The settings ask for something this Exact company does not have."""


class Run:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self.run_id = str(uuid.uuid4())

    @cached_property
    def base_url(self) -> str:
        return resolve_base_url(self.config)

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.config.get("audit_store_url"), self.run_id)

    @cached_property
    def authenticator(self) -> ExactAuthenticator:
        # The tap's: the same store entry, so tap and target rotate one token pair, under a lock.
        if not self.config.get("token_store_key"):
            raise SecretStoreError("No key for the token store: set the SECRET_STORE_KEY "
                                   "environment variable (or token_store_key in the config).")
        store = TokenStore(self.config["token_store_path"], self.config["token_store_key"],
                           self.config["client_id"], name=token_store_name(self.config))
        return ExactAuthenticator(
            base_url=self.base_url, client_id=self.config["client_id"],
            client_secret=self.config["client_secret"], store=store,
            bootstrap_refresh_token=self.config.get("refresh_token"),
            timeout=float(self.config.get("token_timeout", 60)),
            lost_refresh_max_wait=float(self.config.get("lost_refresh_max_wait", 660)),
        )

    @cached_property
    def client(self) -> ExactClient:
        return ExactClient(
            self.base_url, self.authenticator,
            RateLimiter(max_wait=float(self.config.get("max_rate_limit_wait", 90))),
            timeout=float(self.config.get("request_timeout", 300)),
            max_retries=int(self.config.get("max_retries", 5)),
            initial_wait=float(self.config.get("retry_initial_wait", 1.0)),
            user_agent=self.config.get("user_agent") or "target-exactonline/0.1",
        )

    @cached_property
    def mailchimp_tags(self) -> MailchimpTags:
        """Only made when a tag needs Exact's name back (no Mailchimp call otherwise)."""
        return MailchimpTags(self.config)

    @cached_property
    def divisions(self) -> list[int]:
        """`divisions`, every division (`all_divisions`), or the user's current one."""
        configured = [int(d) for d in self.config.get("divisions") or []]
        anchors = configured or [self._current_division()]
        if not (self.config.get("all_divisions") or configured):
            return anchors
        known = sorted(int(row["Code"]) for row in self.client.rows(
            f"{anchors[0]}/system/Divisions", {"$select": "Code"}))
        if self.config.get("all_divisions"):
            return known
        unknown = [d for d in configured if d not in known]
        if unknown:
            raise ConfigurationError(
                f"Division(s) {unknown} are not in this Exact company (it has {known}).")
        return configured

    def _current_division(self) -> int:
        me = list(self.client.rows("current/Me", {"$select": "CurrentDivision"}))
        if not me or not me[0].get("CurrentDivision"):
            raise ConfigurationError("Exact's current/Me gave no CurrentDivision.")
        return int(me[0]["CurrentDivision"])

    def close(self) -> None:
        if "audit" in self.__dict__:
            self.audit.close()
