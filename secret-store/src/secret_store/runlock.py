"""One run at a time per company (tap) and per audience (target), on this machine.

An exclusive `flock` held for the process's lifetime: the OS drops it when the process ends in
any way, SIGKILL included, so there is never a stale lock to clean up. A second run does not
wait (it would then write everything again): it stops at once with a clear message.
`fcntl` directly rather than filelock: filelock may fall back to a lock *file* that a kill
leaves behind, and it deletes the file on release, which lets two processes hold "the" lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path


class AlreadyRunning(Exception):
    """Another live process holds the lock for the same company or audience."""


class RunLock:
    """A held lock; `release()` or the end of the process frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_directory() -> Path:
    """A per-user directory, shared by every project of this user on this machine."""
    directory = Path(tempfile.gettempdir()) / f"exactmc-locks-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def acquire(kind: str, identity: str, description: str) -> RunLock:
    """Take the lock for (`kind`, `identity`) or raise AlreadyRunning.

    `identity` names what must not be written by two runs at once (it is hashed: the file name
    reveals nothing); `description` is what the message shows a person.
    """
    digest = hashlib.sha256(f"{kind}\0{identity}".encode()).hexdigest()[:32]
    path = lock_directory() / f"{kind}-{digest}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyRunning(
            f"Another {kind} run for {description} is in progress on this machine (pid "
            f"{holder}); this one stops before reading or writing anything."
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(fd, path)
