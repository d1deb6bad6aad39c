"""The run lock: one holder at a time across processes, freed by the OS even after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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
        # Fails fast: waiting for the holder would take its 60 s; 10 s leaves a busy machine room.
        assert time.monotonic() - started < 10
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


def test_on_the_fleet_database_two_machines_never_run_one_job_and_a_kill_frees_it(
        tmp_path, postgres_url, monkeypatch) -> None:
    identity = uuid.uuid4().hex
    machine_a = tmp_path / "a"  # each "machine" has its own lock directory (TMPDIR)
    machine_a.mkdir()
    child = subprocess.Popen([sys.executable, "-c", HOLD, identity], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "TMPDIR": str(machine_a),
                                             "EXACTMC_DATABASE_URL": postgres_url})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this process: machine b
        monkeypatch.setenv("EXACTMC_DATABASE_URL", postgres_url)
        with pytest.raises(AlreadyRunning, match=rf"Another test run for the test company is "
                           rf"in progress \(pid {child.pid} on .*\); this one stops"):
            acquire("test", identity, "the test company")
        # Without the fleet database machine b would not know: the flock is local.
        monkeypatch.delenv("EXACTMC_DATABASE_URL")
        acquire("test", identity, "the test company").release()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    monkeypatch.setenv("EXACTMC_DATABASE_URL", postgres_url)
    deadline = time.monotonic() + 30  # the server ends the dead client's session on its EOF
    while True:
        try:
            acquire("test", identity, "the test company").release()
            break
        except AlreadyRunning:
            assert time.monotonic() < deadline, "the killed holder's lock was never dropped"
            time.sleep(0.05)


def test_tenants_sharing_one_identity_do_not_block_each_other(monkeypatch) -> None:
    identity = uuid.uuid4().hex
    monkeypatch.setenv("EXACTMC_TENANT", "acme")
    held = acquire("test", identity, "x")
    try:
        with pytest.raises(AlreadyRunning):
            acquire("test", identity, "x")
        monkeypatch.setenv("EXACTMC_TENANT", "globex")
        acquire("test", identity, "x").release()
    finally:
        held.release()


def test_an_unreachable_fleet_database_stops_the_run_without_its_password(monkeypatch) -> None:
    monkeypatch.setenv("EXACTMC_DATABASE_URL", "postgresql://u:hunter2-pw@127.0.0.1:1/fleet")
    with pytest.raises(AlreadyRunning, match="needs the fleet database") as info:
        acquire("test", uuid.uuid4().hex, "the test company")
    assert "hunter2-pw" not in str(info.value)


HOLD_WATCHED = """
import sys, time
from secret_store import runlock
runlock.WATCH_SECONDS = 0.2
lock = runlock.acquire("test", sys.argv[1], "the test company")
print("held", flush=True)
time.sleep(60)
print("still running", flush=True)
"""


def test_a_holder_whose_fleet_lock_session_ends_stops_at_once(postgres_url) -> None:
    """The advisory lock lives in the lock connection's session: a proxy that cuts idle
    connections, a server restart or an administrator can end it while the run goes on, and
    another machine could then start the same job. The holder notices and stops."""
    import sqlalchemy as sa

    identity = uuid.uuid4().hex
    child = subprocess.Popen([sys.executable, "-c", HOLD_WATCHED, identity],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "EXACTMC_DATABASE_URL": postgres_url})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        engine = sa.create_engine(postgres_url.replace("postgresql://",
                                                       "postgresql+psycopg://", 1))
        with engine.connect() as admin:
            ended = admin.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name"),
                {"name": f"exactmc pid {child.pid} on {os.uname().nodename}"[:63]}).all()
        engine.dispose()
        assert ended == [(True,)]
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait(10)
    assert "still running" not in out
    assert child.returncode != 0
    assert "run lock for the test company was lost" in err, err


def test_a_released_fleet_lock_is_not_mistaken_for_a_lost_one(postgres_url) -> None:
    script = """
import sys, time
from secret_store import runlock
runlock.WATCH_SECONDS = 0.05
runlock.acquire("test", sys.argv[1], "the test company").release()
time.sleep(1)
print("ran on", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script, uuid.uuid4().hex], capture_output=True,
                          text=True, timeout=60, env={**os.environ,
                                                      "EXACTMC_DATABASE_URL": postgres_url})
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "ran on", "")
