"""Fernet-encrypted JSON documents by name: a directory of files, or rows behind a database URL.

Why a store of our own: Exact's refresh tokens rotate on every use, and Meltano hands plugins a
temporary config file, so the only durable place for the newest token is outside the config.

Where (`store_location`): the plugin's setting when given (a directory, or a SQLAlchemy URL:
anything with "://"), else the fleet's one database `EXACTMC_DATABASE_URL`, else the project's
`.secrets` directory (a single company, as before). A fleet tenant's documents are kept apart:
with `EXACTMC_TENANT` set every name is stored as `<tenant>.<name>`, so tenants that share one
Exact app (one client id, so one `exactonline-<client_id>` name) never share its tokens.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from secret_store.database import DATABASE_URL_ENV, DatabaseError, current_tenant, valid_tenant
from secret_store.store_db import DatabaseBackend, DatabaseUnavailable
from secret_store.store_files import DirectoryBackend, LockTimeout

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
PROJECT_ROOT_ENV = "MELTANO_PROJECT_ROOT"
_CURRENT = object()  # `tenant` default: the process's tenant (EXACTMC_TENANT)

# One re-entrant lock per (store, stored name) for the whole process: threads queue here, and a
# thread that already holds the name re-enters instead of waiting for itself on the database.
_thread_locks: dict[tuple[str, str], threading.RLock] = {}
_depth: dict[tuple[str, str], int] = {}
_guard = threading.Lock()


class SecretStoreError(Exception):
    """The store cannot be used: bad key, unreadable document, lock not acquired."""


def generate_key() -> str:
    """A new random Fernet key, as text."""
    return Fernet.generate_key().decode()


def is_url(location: str | os.PathLike[str]) -> bool:
    return "://" in str(location)


def store_location(setting: str | os.PathLike[str] | None) -> str:
    """The store a plugin opens: its setting, else `EXACTMC_DATABASE_URL`, else `.secrets`."""
    if setting and str(setting).strip():
        return str(setting).strip()
    shared = os.environ.get(DATABASE_URL_ENV, "").strip()
    if shared:
        return shared
    return str(Path(os.environ.get(PROJECT_ROOT_ENV) or ".") / ".secrets")


def _backend(location: str | os.PathLike[str]) -> DirectoryBackend | DatabaseBackend:
    if is_url(location):
        try:
            return DatabaseBackend(str(location))
        except (DatabaseUnavailable, sa.exc.ArgumentError) as exc:
            raise SecretStoreError(str(exc) or "Invalid secret-store database URL.") from None
    return DirectoryBackend(location)


@contextmanager
def _database_errors(label: str) -> Iterator[None]:
    """Database failures as SecretStoreError, naming the URL without its password."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [""])[0]
        raise SecretStoreError(
            f"The secret store's database {label} failed: {type(cause).__name__}: {first_line}"
        ) from None
    except DatabaseError as exc:
        raise SecretStoreError(str(exc)) from None


class SecretStore:
    """Encrypted documents at `location` (a directory or a database URL). Thread- and
    process-safe; on PostgreSQL also safe across machines."""

    def __init__(self, location: str | os.PathLike[str] | None, key: str | bytes,
                 tenant: Any = _CURRENT) -> None:
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            # Never echo the key itself.
            raise SecretStoreError(
                "The secret-store key is not a valid Fernet key "
                "(generate one with `secret-store generate-key`)."
            ) from exc
        self.location = store_location(location)
        self._backend = _backend(self.location)
        self.label = self._backend.label  # for messages: a URL's password is hidden
        try:
            self.tenant = current_tenant() if tenant is _CURRENT else (
                valid_tenant(tenant) if tenant else None)
        except DatabaseError as exc:
            raise SecretStoreError(str(exc)) from None

    @property
    def directory(self) -> Path:
        """The store's directory (directory stores only; older callers use it)."""
        if isinstance(self._backend, DirectoryBackend):
            return self._backend.directory
        raise SecretStoreError(f"The secret store {self.label} is a database, not a directory.")

    def _stored_name(self, name: str) -> str:
        if not _NAME.match(name or ""):
            raise SecretStoreError(f"Invalid secret name {name!r}.")
        return f"{self.tenant}.{name}" if self.tenant else name

    def read(self, name: str) -> dict[str, Any] | None:
        """The document stored under `name`, or None when there is none."""
        stored = self._stored_name(name)
        with _database_errors(self.label):
            token = self._backend.read(stored)
        if token is None:
            return None
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise SecretStoreError(
                f"Cannot decrypt {stored} in {self.label}: wrong secret-store key or damaged "
                "document."
            ) from exc

    def write(self, name: str, value: dict[str, Any]) -> None:
        """Replace the document atomically and durably: readers see the old or the new one."""
        stored = self._stored_name(name)
        token = self._fernet.encrypt(json.dumps(value).encode())
        with _database_errors(self.label):
            self._backend.write(stored, token)

    def update(self, name: str, **fields: Any) -> None:
        """Set some fields of the document `name` (created if absent), under its lock."""
        with self.locked(name):
            self.write(name, {**(self.read(name) or {}), **fields})

    @contextmanager
    def locked(self, name: str, timeout: float = 60.0) -> Iterator[None]:
        """Hold the exclusive lock for `name` across threads, processes and (PostgreSQL)
        machines. Re-entrant within a thread."""
        stored = self._stored_name(name)
        slot = (self.location, stored)
        with _guard:
            thread_lock = _thread_locks.setdefault(slot, threading.RLock())
        if not thread_lock.acquire(timeout=timeout):
            raise SecretStoreError(f"Timed out waiting for the lock on {name!r}.")
        try:
            _depth[slot] = _depth.get(slot, 0) + 1
            if _depth[slot] > 1:  # this thread holds it already
                yield
                return
            held = ExitStack()
            with _database_errors(self.label):
                try:
                    held.enter_context(self._backend.lock(stored, timeout))
                except LockTimeout:
                    raise SecretStoreError(
                        f"Timed out waiting for the lock on {name!r}.") from None
            with held:  # the caller's own errors pass through unchanged
                yield
        finally:
            _depth[slot] -= 1
            thread_lock.release()

    def remove_tenant(self, tenant: str) -> list[str]:
        """Delete every document of `tenant` (`tenants remove`); the names removed."""
        return remove_tenant(self.location, tenant)


def remove_tenant(location: str | os.PathLike[str] | None, tenant: str) -> list[str]:
    """Delete every document `tenant` has in the store at `location`; their names (unprefixed)."""
    try:
        prefix = f"{valid_tenant(tenant)}."
    except DatabaseError as exc:
        raise SecretStoreError(str(exc)) from None
    backend = _backend(store_location(location))
    with _database_errors(backend.label):
        removed = backend.remove_prefix(prefix)
    return [name[len(prefix):] for name in removed]
