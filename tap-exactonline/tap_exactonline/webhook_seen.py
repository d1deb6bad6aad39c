"""The deliveries already recorded, so a repeated one is a no-op, across restarts too.

One idempotency key per line (hex), newest last. Only the newest `limit` keys count: Exact
re-sends within hours, never after tens of thousands of later events. The file is compacted
when it doubles, so it stays bounded. The caller holds the inbox's file lock around every call.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_KEY = re.compile(r"[0-9a-f]{64}")  # sha256 hex; anything else is a torn or foreign line


def _fsync_dir(directory: Path) -> None:
    """A new or renamed file survives a power cut only once its directory entry is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_append(path: Path, text: str) -> None:
    """Append and fsync before returning: a 200 promises the record survives a power cut."""
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        _fsync_dir(path.parent)


def durable_replace(path: Path, text: str) -> None:
    """Write a whole new version beside `path`, fsync it, then swap it in atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class SeenDeliveries:
    """Bounded, durable set of idempotency keys (sha256 hex)."""

    def __init__(self, path: str | Path, limit: int = 20_000) -> None:
        self.path = Path(path)
        self.limit = limit
        self._keys: dict[str, None] = {}  # insertion-ordered: oldest first
        self._lines = 0
        self._torn = False
        self._stamp: tuple[int, int, int] | None = None

    def __contains__(self, key: str) -> bool:
        self._refresh()
        return key in self._keys

    def add(self, key: str) -> None:
        self._refresh()
        # A line torn by a kill must not swallow this key: start on a fresh line.
        durable_append(self.path, ("\n" if self._torn else "") + key + "\n")
        self._torn = False
        self._lines += 1
        self._keys.pop(key, None)
        self._keys[key] = None
        while len(self._keys) > self.limit:
            del self._keys[next(iter(self._keys))]
        if self._lines > 2 * self.limit:
            durable_replace(self.path, "".join(k + "\n" for k in self._keys))
            self._lines = len(self._keys)
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self) -> None:
        """Reload when another process (or a restart) changed the file since we last wrote."""
        stamp = self._stat()
        if stamp == self._stamp and (stamp is not None or not self._keys):
            return
        text = self.path.read_text(encoding="utf-8", errors="replace") if stamp else ""
        lines = text.splitlines()
        self._lines = len(lines)
        self._torn = bool(text) and not text.endswith("\n")
        keys = [line for line in lines if _KEY.fullmatch(line)]
        self._keys = dict.fromkeys(keys[-self.limit:])
        self._stamp = stamp
