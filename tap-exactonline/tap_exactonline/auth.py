"""Exact Online OAuth: one authenticator for all streams, tokens kept in the encrypted store.

Exact's rules this follows (see docs/reference): the access token lives 600 s (`expires_in` is a
string); a refresh is refused ("too early") until ~570 s after the previous issue; each refresh
rotates the refresh token, and the old one dies once the new one is used (it lingers ~10 min
before that). So: refresh in the last 5% of the lifetime, never earlier; write the new pair
atomically BEFORE any further call; hold the store's lock around a refresh so two runs never
spend the same refresh token.

Recovery from the known field failure (the token call times out after Exact already rotated):
we cannot know the new token, but the old one lingers. `refresh_started_at` is stored before
each call, so this run (or the next, if the process died) knows a rotation may be in flight and
waits until Exact allows a refresh again (~570 s after), then retries with the same old token.
If that wait is longer than `lost_refresh_max_wait`, the run stops with the time to rerun.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from singer_sdk.authenticators import OAuthAuthenticator

from tap_exactonline.token_store import TokenRecord, TokenStore, fingerprint

LOGGER = logging.getLogger("tap_exactonline.auth")

# Refresh once 95% of the lifetime has passed: 570 of 600 s, exactly when Exact allows it.
REFRESH_AT_FRACTION = 0.95
DEFAULT_LIFETIME = 600.0
# After a lost refresh, retry at most this many times while Exact still says "too early".
MAX_TOKEN_ATTEMPTS = 6


class ExactAuthError(Exception):
    """The token endpoint refused us for a reason retrying will not fix."""


class ReauthorizationRequired(ExactAuthError):
    """No usable refresh token is left: a person must run the authorize flow again."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"{reason} Re-authorize with `tap-exactonline-authorize --config <config>` "
            "(or set a new bootstrap `refresh_token`)."
        )


def _oauth_error(response: requests.Response) -> tuple[str, str]:
    """(error, error_description) of a refused token call; never includes what we sent."""
    try:
        body = response.json()
    except ValueError:
        return "", response.reason or ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error", "")), str(body.get("error_description", ""))


def is_too_early(response: requests.Response) -> bool:
    error, description = _oauth_error(response)
    return (
        response.status_code == 400
        and error == "access_denied"
        and "not expired" in description.lower()
    ) or response.headers.get("Reason", "").startswith("TooEarly")


def is_dead_refresh_token(response: requests.Response) -> bool:
    """Old (already rotated), unknown or expired refresh token."""
    error, description = _oauth_error(response)
    return (
        (response.status_code == 401 and error == "unauthorized_client")
        or error == "invalid_grant"
        or (error == "invalid_request" and "expired" in description.lower())
    )


class ExactAuthenticator(OAuthAuthenticator):
    """Bearer tokens for every stream, refreshed and persisted the way Exact requires."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        store: TokenStore,
        bootstrap_refresh_token: str | None = None,
        timeout: float = 60.0,
        lost_refresh_max_wait: float = 660.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            auth_endpoint=f"{base_url}/api/oauth2/token",
            client_id=client_id,
            client_secret=client_secret,
        )
        # A plain session: the SDK's mounts urllib3 POST retries, and a silently resent refresh
        # would spend the old token a second time.
        self._session = requests.Session()
        self.base_url = base_url
        self.store = store
        self._bootstrap = bootstrap_refresh_token or None
        self._timeout = timeout
        self._max_wait = lost_refresh_max_wait
        self._sleep = sleep
        self._clock = clock
        self._record = TokenRecord()
        self._refresh_due = 0.0
        self._last_refusal = ""
        self._adopt(self._read_own())

    # -- what the SDK calls -------------------------------------------------------------------
    def is_token_valid(self) -> bool:
        return self.access_token is not None and self._clock() < self._refresh_due

    def update_access_token(self) -> None:
        with self.store.locked(timeout=self._max_wait + 120):
            # Another process may have refreshed while we waited for the lock: use its pair.
            stored = self._read_own()
            if stored.access_token and self._clock() < self._due(stored):
                self._adopt(stored)
                return
            self._refresh(stored)

    # -- internals ----------------------------------------------------------------------------
    def _read_own(self) -> TokenRecord:
        record = self.store.read()
        if record.base_url not in (None, self.base_url):
            LOGGER.warning(
                "The token store holds tokens for another host (%s); ignoring them.",
                record.base_url,
            )
            return TokenRecord(bootstrap_fingerprint=record.bootstrap_fingerprint)
        return record

    @staticmethod
    def _due(record: TokenRecord) -> float:
        """When this record's access token should be replaced."""
        if record.issued_at is None:
            return 0.0
        return record.issued_at + REFRESH_AT_FRACTION * (record.lifetime or DEFAULT_LIFETIME)

    def _adopt(self, record: TokenRecord) -> None:
        self._record = record
        self.access_token = record.access_token
        self.expires_in = int(record.lifetime) if record.lifetime else None
        self._refresh_due = self._due(record)

    def _access_token_alive(self) -> bool:
        expires_at = self._record.expires_at
        return bool(self.access_token) and expires_at is not None and self._clock() < expires_at - 1

    def _choose_refresh_token(self, stored: TokenRecord, spent: set[str]) -> tuple[str, bool]:
        """(refresh token to use, whether it is the config's bootstrap)."""
        if stored.refresh_token and stored.refresh_token not in spent:
            return stored.refresh_token, False
        bootstrap = self._bootstrap
        if bootstrap and bootstrap not in spent and (
            stored.refresh_token is None
            or fingerprint(bootstrap) != stored.bootstrap_fingerprint
        ):
            return bootstrap, True
        if not spent:
            raise ReauthorizationRequired("The token store holds no refresh token.")
        raise ReauthorizationRequired(
            f"Exact refused the refresh token ({self._last_refusal}): it was rotated "
            "elsewhere, expired, or never valid."
        )

    def _lost_refresh_allowed_at(self, stored: TokenRecord) -> float | None:
        if stored.refresh_started_at is None:
            return None
        return stored.refresh_started_at + REFRESH_AT_FRACTION * (
            stored.lifetime or DEFAULT_LIFETIME
        )

    def _keep_current_token_meanwhile(self, stored: TokenRecord) -> bool:
        """While a lost refresh blocks refreshing, a still-valid access token is used up."""
        allowed_at = self._lost_refresh_allowed_at(stored)
        expires_at = self._record.expires_at
        if allowed_at is None or allowed_at <= self._clock() or not self._access_token_alive():
            return False
        self._refresh_due = min(allowed_at, (expires_at or allowed_at) - 1)
        return True

    def _wait_for_lost_refresh(self, stored: TokenRecord) -> None:
        """A refresh may have rotated the token unseen: wait until Exact allows the next one."""
        allowed_at = self._lost_refresh_allowed_at(stored)
        if allowed_at is None:
            return
        wait = allowed_at - self._clock()
        if wait <= 0:
            return
        if wait > self._max_wait:
            raise ExactAuthError(
                "An earlier token refresh got no answer, so Exact may have rotated the refresh "
                f"token. Exact allows the retry with the previous token in {wait:.0f} s "
                "(it lingers ~10 minutes): run the tap again then."
            )
        LOGGER.warning(
            "An earlier token refresh got no answer; Exact may have rotated the token. "
            "Waiting %.1f s until Exact allows retrying with the previous refresh token.",
            wait,
        )
        self._sleep(wait)

    def _refresh(self, stored: TokenRecord) -> None:
        spent: set[str] = set()
        for attempt in range(MAX_TOKEN_ATTEMPTS):
            refresh_token, is_bootstrap = self._choose_refresh_token(stored, spent)
            if not is_bootstrap:
                if self._keep_current_token_meanwhile(stored):
                    return
                self._wait_for_lost_refresh(stored)
            previous_start = stored.refresh_started_at
            stored.refresh_started_at = self._clock()
            stored.base_url = self.base_url
            self.store.write(stored)  # written BEFORE the call: see the module docstring

            LOGGER.info("Refreshing the Exact Online access token.")
            try:
                response = self._session.post(
                    self.auth_endpoint,
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": refresh_token,
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                    },
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                # The refresh may or may not have happened: keep refresh_started_at set.
                LOGGER.warning("The token call failed without an answer (%s).", type(exc).__name__)
                if is_bootstrap:
                    stored.refresh_token = refresh_token
                    stored.bootstrap_fingerprint = fingerprint(refresh_token)
                    self.store.write(stored)
                if self._access_token_alive():
                    self._refresh_due = self._clock() + 1
                    return
                continue

            if response.ok:
                self._store_new_pair(stored, response.json(), is_bootstrap, refresh_token)
                return

            # Exact answered, so nothing was rotated by this call.
            stored.refresh_started_at = previous_start
            self.store.write(stored)
            error, description = _oauth_error(response)

            if is_too_early(response):
                if self._access_token_alive():
                    # Keep using the current token; ask again halfway to its expiry.
                    expires_at = self._record.expires_at or self._clock()
                    self._refresh_due = self._clock() + max(1.0, (expires_at - self._clock()) / 2)
                    LOGGER.info("Exact says it is too early to refresh; keeping the current token.")
                    return
                if previous_start is None:
                    raise ExactAuthError(
                        "Exact refuses to refresh yet (access_token not expired) and no valid "
                        "access token is stored: another program may be using this app's tokens."
                    )
                # Recovering from a lost refresh: Exact's own issue time is a little later than
                # our start mark; step forward a few seconds at a time.
                self._sleep(max(1.0, 0.025 * (stored.lifetime or DEFAULT_LIFETIME)))
                continue

            if is_dead_refresh_token(response):
                spent.add(refresh_token)
                self._last_refusal = f"{error}: {description}"
                LOGGER.warning("Exact refused the refresh token: %s", self._last_refusal)
                fresh = self._read_own()
                # Another process may have rotated it: use the newer pair from the store.
                fresh_token_usable = bool(fresh.refresh_token) and fresh.refresh_token not in spent
                if fresh_token_usable and fresh.access_token and self._clock() < self._due(fresh):
                    self._adopt(fresh)
                    return
                stored = fresh
                continue

            if response.status_code >= 500:
                LOGGER.warning("The token endpoint failed with %s; retrying.", response.status_code)
                self._sleep(min(30.0, 2.0**attempt))
                continue

            raise ExactAuthError(
                f"Exact refused the token refresh ({response.status_code} {error}: {description})."
            )
        raise ExactAuthError("Could not refresh the Exact Online access token; giving up.")

    def _store_new_pair(
        self, stored: TokenRecord, body: dict[str, Any], is_bootstrap: bool, used: str
    ) -> None:
        now = self._clock()
        record = TokenRecord(
            refresh_token=body["refresh_token"],
            access_token=body["access_token"],
            issued_at=now,
            lifetime=float(body.get("expires_in") or DEFAULT_LIFETIME),  # a string in Exact
            refresh_started_at=None,
            base_url=self.base_url,
            bootstrap_fingerprint=(
                fingerprint(used) if is_bootstrap else stored.bootstrap_fingerprint
            ),
        )
        self.store.write(record)  # before the token is used for anything
        self._adopt(record)
