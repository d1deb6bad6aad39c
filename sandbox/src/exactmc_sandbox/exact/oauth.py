"""Exact's OAuth 2 authorization-code flow with its quirks: rotating refresh tokens that linger,
the "too early to refresh" refusal, and per-region token namespaces.

Rotation, the strict reading: "upon first use for an API call or retrieval of an access token,
all previous refresh tokens expire". So a new pair is "used" by its first successful API call or
by presenting its refresh token; until then the previous refresh token stays valid.

Choices where the real behaviour is unconfirmed:
- An unknown refresh token (or one from another region) gets 400 invalid_grant.
- Wrong client credentials get 400 invalid_client; the secret is never echoed.
- Presenting a lingering old refresh token again issues a fresh pair and voids the unused
  successor (the client evidently lost it, e.g. after a timed-out refresh).
- An unused successor does not void its predecessor by time (`refresh_linger_seconds=None`):
  "it may linger ~10 minutes" is read as a lower bound. Set a number to test clients against
  the stricter reading (the predecessor dies that long after its successor was issued).
- The bootstrap grant (`/_sandbox/oauth/grant`) issues no access token, so the first refresh
  after it is never "too early".
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from exactmc_sandbox.exact.dates import SandboxClock


@dataclass
class OAuthSettings:
    access_token_seconds: float = 600
    refresh_token_seconds: float = 30 * 24 * 3600
    refresh_too_early_seconds: float = 570
    refresh_linger_seconds: float | None = None  # None: the old one lives until the new is used
    code_seconds: float = 180


class OAuthError(Exception):
    """A refusal from the token endpoint: HTTP status, OAuth error code, description."""

    def __init__(self, status: int, error: str, description: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.body = {"error": error, "error_description": description}
        self.headers = headers or {}


@dataclass
class _Session:
    """One user's consent for one app: tokens descend from it, the too-early clock is shared."""

    region: str
    client_id: str
    last_issued_at: float | None = None


@dataclass
class _RefreshToken:
    value: str
    session: _Session
    issued_at: float
    expires_at: float
    predecessor: _RefreshToken | None = None
    successor: _RefreshToken | None = field(default=None, repr=False)
    used: bool = False  # presented at the token endpoint, or its access token used for a call
    dead: bool = False


@dataclass
class AccessGrant:
    region: str
    client_id: str
    expires_at: float
    # The refresh token issued with this access token: the pair's first use voids older ones.
    refresh: _RefreshToken | None = field(default=None, repr=False)


@dataclass
class _Code:
    region: str
    client_id: str
    redirect_uri: str
    expires_at: float


class TokenAuthority:
    """Issues and checks codes and tokens. Thread-safe."""

    def __init__(self, client_id: str, client_secret: str, settings: OAuthSettings,
                 clock: SandboxClock) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._access: dict[str, AccessGrant] = {}

    # -- authorize ----------------------------------------------------------------------------
    def issue_code(self, region: str, client_id: str, redirect_uri: str) -> str:
        if client_id != self.client_id:
            raise OAuthError(400, "invalid_client", "Unknown client_id")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(region, client_id, redirect_uri,
                                      self.clock.time() + self.settings.code_seconds)
        return code

    def grant_refresh_token(self, region: str, client_id: str) -> str:
        """What a completed authorize + code exchange leaves behind (the bootstrap)."""
        if client_id != self.client_id:
            raise OAuthError(400, "invalid_client", "Unknown client_id")
        with self._lock:
            return self._new_refresh(_Session(region, client_id), None).value

    # -- token endpoint -----------------------------------------------------------------------
    def token(self, region: str, form: dict[str, str]) -> dict[str, Any]:
        self._check_client(form.get("client_id"), form.get("client_secret"))
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                return self._exchange_code(region, form)
            if grant_type == "refresh_token":
                return self._refresh_tokens(region, form.get("refresh_token") or "")
        raise OAuthError(400, "unsupported_grant_type",
                         "grant_type must be authorization_code or refresh_token")

    def _check_client(self, client_id: str | None, client_secret: str | None) -> None:
        ok_id = client_id == self.client_id
        ok_secret = hmac.compare_digest((client_secret or "").encode(),
                                        self._client_secret.encode())
        if not (ok_id and ok_secret):
            raise OAuthError(400, "invalid_client", "Invalid client credentials")

    def _exchange_code(self, region: str, form: dict[str, str]) -> dict[str, Any]:
        code = self._codes.pop(form.get("code") or "", None)  # single-use, even when refused
        if code is None or code.region != region or code.expires_at <= self.clock.time():
            raise OAuthError(400, "invalid_grant", "The authorization code is invalid or expired")
        if form.get("redirect_uri") and form["redirect_uri"] != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
        return self._issue_pair(_Session(region, code.client_id), None)

    def _refresh_tokens(self, region: str, value: str) -> dict[str, Any]:
        now = self.clock.time()
        token = self._refresh.get(value)
        if token is None or token.session.region != region:
            raise OAuthError(400, "invalid_grant", "Invalid refresh token")
        if now >= token.expires_at:
            expired = datetime.fromtimestamp(token.expires_at, tz=timezone.utc)
            raise OAuthError(400, "invalid_request",
                             f"The refresh token expired at {expired:%m/%d/%Y %H:%M:%S}")
        successor = token.successor
        linger = self.settings.refresh_linger_seconds
        if successor is not None and (
            successor.used or (linger is not None and now >= successor.issued_at + linger)
        ):
            token.dead = True
        if token.dead:
            raise OAuthError(401, "unauthorized_client", "Old refresh token used.")
        session = token.session
        if (session.last_issued_at is not None
                and now - session.last_issued_at < self.settings.refresh_too_early_seconds):
            raise OAuthError(400, "access_denied", "Rate limit exceeded: access_token not expired",
                             headers={"Reason": "TooEarlyToRefreshTokens"})
        self._first_use(token)
        if successor is not None:
            self._refresh.pop(successor.value, None)
        return self._issue_pair(session, token)

    def _issue_pair(self, session: _Session, parent: _RefreshToken | None) -> dict[str, Any]:
        now = self.clock.time()
        session.last_issued_at = now
        access = secrets.token_urlsafe(32)
        refresh = self._new_refresh(session, parent)
        self._access[access] = AccessGrant(session.region, session.client_id,
                                           now + self.settings.access_token_seconds, refresh)
        # expires_in is a string in Exact's answer.
        return {"access_token": access, "token_type": "bearer",
                "expires_in": str(int(self.settings.access_token_seconds)),
                "refresh_token": refresh.value}

    def _new_refresh(self, session: _Session, parent: _RefreshToken | None) -> _RefreshToken:
        now = self.clock.time()
        token = _RefreshToken(secrets.token_urlsafe(48), session, now,
                              now + self.settings.refresh_token_seconds, predecessor=parent)
        if parent is not None:
            parent.successor = token
        self._refresh[token.value] = token
        return token

    # -- API calls ----------------------------------------------------------------------------
    def check_access(self, region: str, authorization: str | None) -> AccessGrant | None:
        """The grant behind a `Bearer` header, or None when missing, unknown, foreign or expired."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        with self._lock:
            grant = self._access.get(authorization[7:].strip())
            if grant is None or grant.region != region or grant.expires_at <= self.clock.time():
                return None
            self._first_use(grant.refresh)
        return grant

    @staticmethod
    def _first_use(token: _RefreshToken | None) -> None:
        """A pair is used: every refresh token before it expires (caller holds the lock)."""
        if token is None:
            return
        token.used = True
        earlier = token.predecessor
        while earlier is not None and not earlier.dead:
            earlier.dead = True
            earlier = earlier.predecessor
