"""Fernet-encrypted JSON documents, one file per name, written atomically under a file lock.

Why a store of our own: Exact's refresh tokens rotate on every use, and Meltano hands plugins a
temporary config file, so the only durable place for the newest token is outside the config.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from filelock import FileLock, Timeout

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class SecretStoreError(Exception):
    """The store cannot be used: bad key, unreadable document, lock not acquired."""


def generate_key() -> str:
    """A new random Fernet key, as text."""
    return Fernet.generate_key().decode()


class SecretStore:
    """A directory of encrypted documents. Safe across threads and processes."""

    def __init__(self, directory: str | os.PathLike[str], key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            # Never echo the key itself.
            raise SecretStoreError(
                "The secret-store key is not a valid Fernet key "
                "(generate one with `secret-store generate-key`)."
            ) from exc
        self.directory = Path(directory)
        self._thread_locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise SecretStoreError(f"Invalid secret name {name!r}.")
        return self.directory / f"{name}.enc"

    def read(self, name: str) -> dict[str, Any] | None:
        """The document stored under `name`, or None when there is none."""
        path = self._path(name)
        try:
            token = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise SecretStoreError(
                f"Cannot decrypt {path}: wrong secret-store key or damaged file."
            ) from exc

    def write(self, name: str, value: dict[str, Any]) -> None:
        """Replace the document atomically: readers see the old or the new one, never half."""
        path = self._path(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = self._fernet.encrypt(json.dumps(value).encode())
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(token)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def update(self, name: str, **fields: Any) -> None:
        """Set some fields of the document `name` (created if absent), under its lock."""
        with self.locked(name):
            self.write(name, {**(self.read(name) or {}), **fields})

    @contextmanager
    def locked(self, name: str, timeout: float = 60.0) -> Iterator[None]:
        """Hold the exclusive lock for `name` across processes and threads."""
        path = self._path(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._guard:
            thread_lock = self._thread_locks.setdefault(name, threading.RLock())
        if not thread_lock.acquire(timeout=timeout):
            raise SecretStoreError(f"Timed out waiting for the lock on {name!r}.")
        try:
            try:
                with FileLock(str(path) + ".lock", timeout=timeout):
                    yield
            except Timeout as exc:
                raise SecretStoreError(f"Timed out waiting for the lock on {name!r}.") from exc
        finally:
            thread_lock.release()
