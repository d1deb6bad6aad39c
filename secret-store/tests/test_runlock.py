"""The run lock: one holder at a time across processes, freed by the OS even after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from secret_store.runlock import AlreadyRunning, acquire

HOLD = """
import sys, time
from secret_store.runlock import acquire
lock = acquire("test", sys.argv[1], "the test company")
print("held", flush=True)
time.sleep(60)
"""


def hold_in_child(identity: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD, identity], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_holder_is_refused_at_once_and_a_kill_frees_the_lock() -> None:
    identity = uuid.uuid4().hex
    child = hold_in_child(identity)
    try:
        started = time.monotonic()
        with pytest.raises(AlreadyRunning, match=rf"the test company .*pid {child.pid}"):
            acquire("test", identity, "the test company")
        assert time.monotonic() - started < 1  # fails fast, does not wait
        # Another identity (another company or audience) is not blocked.
        acquire("test", uuid.uuid4().hex, "another company").release()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    # No stale lock after the kill.
    acquire("test", identity, "the test company").release()


def test_release_lets_the_same_process_take_it_again() -> None:
    identity = uuid.uuid4().hex
    lock = acquire("test", identity, "x")
    with pytest.raises(AlreadyRunning):
        acquire("test", identity, "x")  # flock is per open file: this process is refused too
    lock.release()
    acquire("test", identity, "x").release()
    assert oct(lock.path.stat().st_mode & 0o777) == "0o600"
