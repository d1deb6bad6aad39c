"""The store's default backend: a directory of Fernet files, written atomically, file-locked."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


class LockTimeout(Exception):
    """The lock was not acquired in time."""


class DirectoryBackend:
    """One `<name>.enc` file per document, in `directory` (made 0700 on first write)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.label = str(self.directory)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.directory / f"{name}.enc").read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, token: bytes) -> None:
        """Replace the file atomically and durably: readers see the old or the new one."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(token)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.directory / f"{name}.enc")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    @contextmanager
    def lock(self, name: str, timeout: float) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with file_lock(self.directory / f"{name}.enc.lock", timeout):
            yield

    def remove_prefix(self, prefix: str) -> list[str]:
        removed = []
        for path in sorted(self.directory.glob(f"{prefix}*.enc")):
            path.unlink(missing_ok=True)
            Path(f"{path}.lock").unlink(missing_ok=True)
            removed.append(path.name[: -len(".enc")])
        return removed


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=max(timeout, 0.0))
    except Timeout as exc:
        raise LockTimeout from exc
    try:
        yield
    finally:
        lock.release()
