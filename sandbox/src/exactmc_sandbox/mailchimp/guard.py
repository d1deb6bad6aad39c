"""Who is calling and how many of their requests are in flight.

Mailchimp allows 10 simultaneous connections per API key; the 11th is refused with 429. We count
requests being processed per credential, and remember the highest concurrency each credential
ever attempted (refused requests included) so tests can prove a client stayed within the limit.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable


def credential_label(secret: str) -> str:
    """A stable, non-reversible name for a credential: secrets never leave the simulator."""
    return "cred-" + hashlib.sha256(secret.encode()).hexdigest()[:10]


class Authenticator:
    def __init__(self, api_keys: Iterable[str], oauth_tokens: Iterable[str]) -> None:
        self.api_keys = set(api_keys)
        self.oauth_tokens = set(oauth_tokens)

    def identify(self, header: str | None) -> str | None:
        """The credential label for a valid Authorization header, else None."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return None
            _, _, password = decoded.partition(":")
            return credential_label(password) if password in self.api_keys else None
        if scheme in ("bearer", "oauth"):
            return credential_label(value) if value in self.oauth_tokens else None
        return None

    def is_valid_token(self, token: str) -> bool:
        return token in self.oauth_tokens


class InFlightLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}
        self._max_seen: dict[str, int] = {}

    def acquire(self, credential: str) -> bool:
        """Count one more request for `credential`; False (and not counted) when over the limit."""
        with self._lock:
            attempted = self._current.get(credential, 0) + 1
            self._max_seen[credential] = max(self._max_seen.get(credential, 0), attempted)
            if attempted > self.limit:
                return False
            self._current[credential] = attempted
            return True

    def release(self, credential: str) -> None:
        with self._lock:
            self._current[credential] -= 1

    def max_seen(self) -> dict[str, int]:
        with self._lock:
            return dict(self._max_seen)

    def reset_max_seen(self) -> None:
        with self._lock:
            self._max_seen = dict(self._current)
