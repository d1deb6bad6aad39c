"""The encrypted home of Exact's rotating tokens (one document per OAuth client).

Why not the config: Meltano hands the tap a temporary config file, and the refresh token changes
on every refresh, so the newest pair must live somewhere durable that we can rewrite atomically.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

from secret_store import SecretStore


def fingerprint(secret: str) -> str:
    """A one-way digest, to recognise a bootstrap token again without keeping it."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class TokenRecord:
    """What one store document holds. Times are epoch seconds (local clock)."""

    refresh_token: str | None = None
    access_token: str | None = None
    # When we received the access token, and how long Exact said it lives.
    issued_at: float | None = None
    lifetime: float | None = None
    # Set just BEFORE a refresh call, cleared once its answer is stored: if it is still set, a
    # refresh may have rotated the token without us learning the new one (timeout, kill).
    refresh_started_at: float | None = None
    # The host the tokens belong to (a token only works on the host that issued it).
    base_url: str | None = None
    # Digest of the config's bootstrap refresh token that seeded this document, if any.
    bootstrap_fingerprint: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TokenRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    @property
    def expires_at(self) -> float | None:
        if self.issued_at is None or self.lifetime is None:
            return None
        return self.issued_at + self.lifetime

    def __repr__(self) -> str:  # never print a token by accident
        return f"TokenRecord(base_url={self.base_url!r}, issued_at={self.issued_at!r})"


class TokenStore:
    """Read, write and lock the token document of one client id."""

    def __init__(self, location: str | None, key: str, client_id: str,
                 name: str | None = None) -> None:
        # A directory or a database URL (None: EXACTMC_DATABASE_URL, else `.secrets`).
        self._store = SecretStore(location, key)
        self.label = self._store.label  # where, for messages (a URL's password hidden)
        # Exact client ids are GUIDs, often written with braces; the store accepts [A-Za-z0-9._-].
        self.name = name or "exactonline-" + re.sub(r"[^A-Za-z0-9._-]", "", client_id)

    def read(self) -> TokenRecord:
        return TokenRecord.from_dict(self._store.read(self.name))

    def write(self, record: TokenRecord) -> None:
        self._store.write(self.name, asdict(record))

    @contextmanager
    def locked(self, timeout: float = 120.0) -> Iterator[None]:
        with self._store.locked(self.name, timeout=timeout):
            yield
