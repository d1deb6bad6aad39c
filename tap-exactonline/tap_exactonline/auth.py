"""Exact Online OAuth: one authenticator for all streams, tokens kept in the encrypted store.

Exact's rules this follows (docs: /work/shared/reference): the access token lives 600 s
(`expires_in` is a string); a refresh is refused ("too early") until ~570 s after the previous
issue; each refresh rotates the refresh token, and all earlier refresh tokens expire on the
first use of the new pair (an API call with its access token, or its refresh token). So:
refresh in the last 5% of the lifetime, never earlier; write the new pair atomically BEFORE any
further call; hold the store's lock around a refresh so two runs never spend the same token.

A lost answer (dropped connection, timeout, cut-off body, or the process killed while the call
was in flight): Exact may or may not have rotated. The refresh token we sent stays in the store
(the bootstrap too: it is stored before it is spent) with `refresh_started_at`, the mark of a
call whose answer we never read. Both of Exact's facts make this recoverable without a person:
- if Exact did rotate, the new pair was never used, so the old refresh token is still alive;
- retrying at once tells which: nothing happened (success, no stall) or Exact answers "too
  early", which proves a lost issue. Then we wait until Exact allows a refresh (~570 s after the
  mark) within the run if `lost_refresh_max_wait` permits, else stop with the store intact and
  the next run recovers. The old refresh token is only replaced by a stored new pair.

A 401 on a data call (token revoked, or our clock and Exact's disagree): one refresh, and the
caller retries once. If Exact says "too early" then, the token really was rejected: say so.
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
# A token call with no usable answer is retried at once (Exact says "too early" if it rotated):
# this many times, with a short backoff doubling from NO_ANSWER_BACKOFF seconds.
NO_ANSWER_RETRIES = 3
NO_ANSWER_BACKOFF = 0.5
# Exact issues the lost pair a little after our mark (the call takes time): wait this much more.
LOST_ISSUE_MARGIN = 5.0
# "Too early" answers per refresh: each counts toward Exact's 10 errors per endpoint an hour.
MAX_TOO_EARLY = 3
MAX_SERVER_ERRORS = 4


class ExactAuthError(Exception):
    """The token endpoint refused us for a reason retrying will not fix."""


class ReauthorizationRequired(ExactAuthError):
    """No usable refresh token is left: a person must run the authorize flow again."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"{reason} Re-authorize with `tap-exactonline-authorize --config <config>` "
            "(or set a new bootstrap `refresh_token`)."
        )


class LostRefreshPending(ExactAuthError):
    """A lost refresh is certain, and Exact allows the retry later than this run may wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(
            "An earlier token refresh got no answer and Exact confirms it issued tokens then "
            '("too early" to refresh again). Nothing is lost: the previous refresh token stays '
            f"valid, the new pair was never used. Exact allows the retry in {wait:.0f} s; the "
            "next run recovers by itself (or raise `lost_refresh_max_wait` to wait in the run)."
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


def _new_pair(response: requests.Response) -> dict[str, Any]:
    """The tokens of a 2xx answer; ValueError when the body is cut off or incomplete."""
    body = response.json()
    if not isinstance(body, dict) or not body.get("access_token") or not body.get(
        "refresh_token"
    ):
        raise ValueError("incomplete token answer")
    return body


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
        # Digests of access tokens Exact answered 401 to, and whether this run already made its
        # one refresh after a 401 (never more: repeated 4xx get the app blocked for an hour).
        self._rejected: set[str] = set()
        self._refreshed_after_401 = False
        self._adopt(self._read_own())

    # -- what the SDK calls -------------------------------------------------------------------
    def is_token_valid(self) -> bool:
        return self.access_token is not None and self._clock() < self._refresh_due

    def update_access_token(self) -> None:
        with self.store.locked(timeout=self._max_wait + 120):
            # Another process may have refreshed while we waited for the lock: use its pair.
            stored = self._read_own()
            if self._usable(stored):
                self._adopt(stored)
                return
            self._refresh(stored)

    # -- what the streams call ----------------------------------------------------------------
    def refresh_after_unauthorized(self, authorization: str | None) -> None:
        """A data call got 401 with `authorization`: refresh once so the caller can retry once.

        Raises ExactAuthError when a refresh cannot help (Exact says "too early", so the token
        really was rejected) or this run already refreshed after a 401.
        """
        rejected = (authorization or "").removeprefix("Bearer ").strip()
        if rejected and rejected != self.access_token and self.is_token_valid():
            return  # already replaced since that request was sent
        with self.store.locked(timeout=self._max_wait + 120):
            if rejected:
                self._rejected.add(fingerprint(rejected))
            stored = self._read_own()
            if self._usable(stored):  # another process stored a newer pair meanwhile
                self._adopt(stored)
                return
            if self._refreshed_after_401:
                raise ExactAuthError(
                    "Exact answered 401 Unauthorized again after this run refreshed the token "
                    "for an earlier 401; not refreshing again (Exact blocks an app after 10 "
                    "errors an hour). Check the app's access in Exact Online; if it was "
                    "revoked, re-authorize with `tap-exactonline-authorize`."
                )
            self._refreshed_after_401 = True
            LOGGER.warning("Exact answered 401 to a current access token: refreshing once.")
            self._refresh(stored, after_401=True)

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

    def _usable(self, record: TokenRecord) -> bool:
        return (
            bool(record.access_token)
            and self._clock() < self._due(record)
            and fingerprint(record.access_token or "") not in self._rejected
        )

    def _adopt(self, record: TokenRecord) -> None:
        self._record = record
        self.access_token = record.access_token
        self.expires_in = int(record.lifetime) if record.lifetime else None
        self._refresh_due = self._due(record)

    def _access_token_alive(self) -> bool:
        expires_at = self._record.expires_at
        return (
            bool(self.access_token)
            and expires_at is not None
            and self._clock() < expires_at - 1
            and fingerprint(self.access_token or "") not in self._rejected
        )

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

    def _seed(self, stored: TokenRecord, bootstrap: str) -> TokenRecord:
        """The bootstrap becomes the store's refresh token BEFORE it is spent: if the answer is
        lost, the next attempt (this run or the next) retries it instead of forgetting it."""
        return TokenRecord(
            refresh_token=bootstrap,
            base_url=self.base_url,
            bootstrap_fingerprint=fingerprint(bootstrap),
            # A mark left by an older version (bootstrap spent, answer lost) still counts.
            refresh_started_at=None if stored.refresh_token else stored.refresh_started_at,
        )

    def _keep_current_token_meanwhile(self, stored: TokenRecord) -> bool:
        """While a lost refresh blocks refreshing, a still-valid access token is used up."""
        if stored.refresh_started_at is None or not self._access_token_alive():
            return False
        allowed_at = stored.refresh_started_at + REFRESH_AT_FRACTION * (
            stored.lifetime or DEFAULT_LIFETIME
        )
        if allowed_at <= self._clock():
            return False
        self._refresh_due = min(allowed_at, (self._record.expires_at or allowed_at) - 1)
        return True

    def _wait_until_exact_allows(
        self, stored: TokenRecord, lost_mark: float | None, too_early: int, waited: float
    ) -> float:
        """Exact refuses ("too early") and we have no working token: wait, or stop cleanly.

        Returns the seconds slept. The first wait runs to ~570 s after the lost call's mark
        (with no mark: after now, the latest Exact can have issued); later ones step forward.
        """
        lifetime = stored.lifetime or DEFAULT_LIFETIME
        now = self._clock()
        if too_early == 1:
            issued = lost_mark if lost_mark is not None else now
            wait = max(1.0, issued + REFRESH_AT_FRACTION * lifetime + LOST_ISSUE_MARGIN - now)
        else:
            wait = 0.025 * lifetime
        if too_early > MAX_TOO_EARLY or waited + wait > self._max_wait:
            raise LostRefreshPending(wait)
        LOGGER.warning(
            "Exact says it is too early to refresh: an earlier token call whose answer was lost "
            "did rotate. The previous refresh token is still valid; waiting %.0f s until Exact "
            "allows using it.", wait,
        )
        self._sleep(wait)
        return wait

    def _refresh(self, stored: TokenRecord, after_401: bool = False) -> None:
        spent: set[str] = set()
        no_answer = too_early = server_errors = 0
        waited = 0.0
        first = True
        while True:
            refresh_token, is_bootstrap = self._choose_refresh_token(stored, spent)
            if is_bootstrap:
                stored = self._seed(stored, refresh_token)
            elif first and not after_401 and self._keep_current_token_meanwhile(stored):
                return
            first = False
            lost_mark = stored.refresh_started_at
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
                tokens = _new_pair(response) if response.ok else None
            except (requests.RequestException, ValueError) as exc:
                # No answer we can read: Exact may have rotated, so the mark stays. Retrying the
                # same token at once is safe: Exact answers "too early" if it did rotate.
                no_answer += 1
                LOGGER.warning("The token call got no usable answer (%s).", type(exc).__name__)
                if no_answer > NO_ANSWER_RETRIES:
                    raise ExactAuthError(
                        f"The token endpoint gave no usable answer {no_answer} times. The stored "
                        "tokens are intact; the next run retries."
                    ) from None
                self._sleep(NO_ANSWER_BACKOFF * 2 ** (no_answer - 1))
                continue

            if tokens is not None:
                self._store_new_pair(stored, tokens, is_bootstrap, refresh_token)
                return

            # Exact answered, so nothing was rotated by this call.
            stored.refresh_started_at = lost_mark
            self.store.write(stored)
            error, description = _oauth_error(response)

            if is_too_early(response):
                too_early += 1
                if lost_mark is None and self._access_token_alive():
                    # Keep using the current token; ask again halfway to its expiry.
                    expires_at = self._record.expires_at or self._clock()
                    self._refresh_due = self._clock() + max(1.0, (expires_at - self._clock()) / 2)
                    LOGGER.info("Exact says it is too early to refresh; keeping the current token.")
                    return
                if lost_mark is not None and self._keep_current_token_meanwhile(stored):
                    return
                if after_401 and lost_mark is None:
                    age = self._clock() - (self._record.issued_at or self._clock())
                    raise ExactAuthError(
                        "Exact answered 401 Unauthorized to the access token issued "
                        f"{age:.0f} s ago and refuses a new one yet (too early): the token was "
                        "revoked, or another program uses this app's tokens. The stored tokens "
                        "are unchanged; if access was revoked, re-authorize with "
                        "`tap-exactonline-authorize`."
                    )
                waited += self._wait_until_exact_allows(stored, lost_mark, too_early, waited)
                continue

            if is_dead_refresh_token(response):
                spent.add(refresh_token)
                self._last_refusal = f"{error}: {description}"
                LOGGER.warning("Exact refused the refresh token: %s", self._last_refusal)
                fresh = self._read_own()
                # Another process may have rotated it: use the newer pair from the store.
                fresh_token_usable = bool(fresh.refresh_token) and fresh.refresh_token not in spent
                if fresh_token_usable and self._usable(fresh):
                    self._adopt(fresh)
                    return
                stored = fresh
                continue

            if response.status_code >= 500 and server_errors < MAX_SERVER_ERRORS:
                server_errors += 1
                LOGGER.warning("The token endpoint failed with %s; retrying.", response.status_code)
                self._sleep(min(30.0, 2.0**server_errors))
                continue

            raise ExactAuthError(
                f"Exact refused the token refresh ({response.status_code} {error}: {description})."
            )

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
