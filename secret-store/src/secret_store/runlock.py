"""One run at a time per company (tap) and per audience (target), on this machine.

An exclusive `flock` held for the process's lifetime: the OS drops it when the process ends in
any way, SIGKILL included, so there is never a stale lock to clean up. A second run does not
wait (it would then write everything again): it stops at once with a clear message.
`fcntl` directly rather than filelock: filelock may fall back to a lock *file* that a kill
leaves behind, and it deletes the file on release, which lets two processes hold "the" lock.

A fleet on several machines (`EXACTMC_DATABASE_URL` on PostgreSQL) also takes a session-level
`pg_try_advisory_lock` on a connection of its own, kept for the process's lifetime: the server
drops it when that connection ends, a kill of the process included, so two MACHINES never run
one tenant's job at once either. The tenant (`EXACTMC_TENANT`) is part of the lock's identity:
tenants sharing one Exact app never block each other. That session can end while the run goes
on (a proxy cutting idle connections, a server restart, an administrator): a watch asks every
`WATCH_SECONDS` whether the lock is still held and, when it is not, stops the process at once,
as a kill would (every run is safe to kill and completes on the next). Another machine could
start the job within that window; the watch keeps it short and the session never idle.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from secret_store.database import DATABASE_URL_ENV, current_tenant, engine_for


class AlreadyRunning(Exception):
    """Another live process holds the lock for the same company or audience."""


class RunLockUnavailable(AlreadyRunning):
    """The fleet database could not be asked for the run lock (the run must not start)."""


_held: list[sa.Connection] = []  # the advisory locks' connections live as long as the process
WATCH_SECONDS = 10.0  # how often a fleet lock's session is asked whether it still holds it
EXIT_LOCK_LOST = 75  # EX_TEMPFAIL: nothing is wrong with the job; run it again
logger = logging.getLogger(__name__)


class RunLock:
    """A held lock; `release()` or the end of the process frees it."""

    def __init__(self, fd: int, path: Path, connection: sa.Connection | None = None,
                 description: str = "") -> None:
        self._fd: int | None = fd
        self.path = path
        self._connection = connection  # holds the advisory lock while open
        self._watch = None if connection is None else _SessionWatch(connection, description)

    def release(self) -> None:
        if self._watch is not None:
            self._watch.stop()  # before the close, which would look like a lost lock
            self._watch = None
        if self._connection is not None:
            self._connection.close()  # detached: really closed, so the server drops the lock
            _held.remove(self._connection)
            self._connection = None
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
    tenant = current_tenant()
    scoped = f"{tenant}\0{kind}\0{identity}" if tenant else f"{kind}\0{identity}"
    digest = hashlib.sha256(scoped.encode()).hexdigest()[:32]
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
    try:
        connection = _fleet_lock(kind, digest, description)
    except BaseException:
        os.close(fd)
        raise
    return RunLock(fd, path, connection, description)


def _fleet_database() -> str | None:
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url and make_url(url).get_backend_name() == "postgresql":
        return url
    return None


def _fleet_lock(kind: str, digest: str, description: str) -> sa.Connection | None:
    """The advisory lock on the fleet's PostgreSQL database, or None without one."""
    url = _fleet_database()
    if url is None:
        return None
    key = int(digest[:16], 16) - (1 << 63)  # a signed 64-bit advisory key
    try:
        connection = engine_for(url, "runlock", use_current_tenant=False).connect()
        connection.detach()  # its own session for the process's lifetime, never pooled
        # Who holds it, for the message a second machine shows (pg_stat_activity).
        holder = f"exactmc pid {os.getpid()} on {socket.gethostname()}"[:63]
        connection.execute(sa.text("SELECT set_config('application_name', :a, false)"),
                           {"a": holder})
        taken = connection.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                   {"k": key}).scalar_one()
        if not taken:
            other = connection.execute(sa.text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.objid::bigint = (:k & 4294967295) "
                "AND l.classid::bigint = ((:k >> 32) & 4294967295)"),
                {"k": key}).scalar()
            connection.close()
            raise AlreadyRunning(
                f"Another {kind} run for {description} is in progress ("
                f"{(other or 'another machine').removeprefix('exactmc ')}); this one stops "
                "before reading or writing anything.")
        connection.commit()  # end the implicit transaction; the session lock stays
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise RunLockUnavailable(
            f"The run lock for {description} needs the fleet database, which failed: "
            f"{type(cause).__name__}; this run stops before reading or writing anything."
        ) from None
    _held.append(connection)
    return connection



class _SessionWatch:
    """Asks the lock's session every WATCH_SECONDS whether it still holds its advisory lock;
    calls `on_lost` (by default: stop the process) the first time it does not."""

    def __init__(self, connection: sa.Connection, description: str,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self._connection = connection
        self._description = description
        self._on_lost = on_lost or _stop_the_process
        self._stopped = threading.Event()
        self._asking = threading.Lock()  # `stop` waits for a question in flight
        self._thread = threading.Thread(target=self._run, name="runlock-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._asking:
            pass

    def _run(self) -> None:
        while not self._stopped.wait(WATCH_SECONDS):
            with self._asking:
                if self._stopped.is_set():
                    return
                held = self._still_held()
            if not held:
                self._on_lost(self._description)
                return

    def _still_held(self) -> bool:
        try:
            held = self._connection.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid()")).scalar_one()
            self._connection.commit()
        except sa.exc.SQLAlchemyError:
            return False  # the session is gone, and its lock with it
        return bool(held)


def _stop_the_process(description: str) -> None:
    message = (f"The run lock for {description} was lost: the fleet database ended the session "
               "that held it. This run stops now, so that no other machine's run of the same "
               "job writes alongside it; run it again.")
    logger.error(message)
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(EXIT_LOCK_LOST)  # as a kill would: every run is safe to kill and redo
