"""The encrypted store on its three backends: a directory (the default), SQLite and PostgreSQL
URLs (a real server), with the same interface, errors and locking."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from secret_store import SecretStore, SecretStoreError, generate_key, remove_tenant
from secret_store.database import DATABASE_URL_ENV, TENANT_ENV


@pytest.fixture(params=["directory", "sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store lives: today's directory, or a database URL."""
    if request.param == "directory":
        return str(tmp_path / "secrets")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'secrets.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(autouse=True)
def _single_company(monkeypatch):
    monkeypatch.delenv(TENANT_ENV, raising=False)
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)


def raw_contents(location: str, postgres_server) -> bytes:
    """Everything the store keeps at rest: the files, the SQLite file, or a pg_dump."""
    if location.startswith("postgresql"):
        dump = subprocess.run([str(postgres_server.bindir / "pg_dump"), "--data-only",
                               location.replace("postgresql+psycopg", "postgresql")],
                              capture_output=True, check=True)
        return dump.stdout
    if location.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in Path(location[len("sqlite:///"):]).parent
                        .glob("*.sqlite*"))
    return b"".join(p.read_bytes() for p in Path(location).iterdir())


def test_roundtrip_update_and_nothing_in_clear_at_rest(location, request):
    store = SecretStore(location, generate_key())
    assert store.read("missing") is None
    store.write("exactonline-abc", {"refresh_token": "very-secret-refresh"})
    assert store.read("exactonline-abc") == {"refresh_token": "very-secret-refresh"}
    store.write("exactonline-abc", {"refresh_token": "rotated-secret-refresh"})
    store.update("exactonline-abc", access_token="secret-access-token")
    assert store.read("exactonline-abc") == {"refresh_token": "rotated-secret-refresh",
                                             "access_token": "secret-access-token"}
    server = request.getfixturevalue("postgres_server") if "postgresql" in location else None
    raw = raw_contents(location, server)
    assert b"exactonline-abc" in raw or "://" not in location  # the dump did read the rows
    for secret in (b"very-secret-refresh", b"rotated-secret-refresh", b"secret-access-token"):
        assert secret not in raw


def test_wrong_key_is_a_clear_error_without_the_key(location):
    SecretStore(location, generate_key()).write("x", {"a": 1})
    other = generate_key()
    with pytest.raises(SecretStoreError, match="wrong secret-store key") as info:
        SecretStore(location, other).read("x")
    assert other not in str(info.value)
    with pytest.raises(SecretStoreError, match="not a valid Fernet key"):
        SecretStore(location, "not-a-key")


def test_database_errors_name_no_password():
    store = SecretStore("postgresql://exactmc:hunter2-pw@127.0.0.1:1/fleet", generate_key())
    with pytest.raises(SecretStoreError, match="database") as info:
        store.read("x")
    assert "hunter2-pw" not in str(info.value) and "hunter2-pw" not in store.label


def _increment(location: str, key: str, times: int) -> None:
    store = SecretStore(location, key)
    for _ in range(times):
        with store.locked("counter"):
            doc = store.read("counter") or {"n": 0}
            doc["n"] += 1
            store.write("counter", doc)


def test_lock_serialises_processes(location):
    key = generate_key()
    # Forked before this process opens `location`: no child inherits a connection to it.
    procs = [multiprocessing.get_context("fork").Process(target=_increment,
                                                         args=(location, key, 20))
             for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert SecretStore(location, key).read("counter") == {"n": 80}


def test_lock_is_reentrant_in_one_thread(location):
    store = SecretStore(location, generate_key())
    with store.locked("doc", timeout=2), store.locked("doc", timeout=2):
        store.update("doc", a=1)  # update takes the lock a third time
    assert store.read("doc") == {"a": 1}


HOLD = """
import sys, time
from secret_store import SecretStore
store = SecretStore(sys.argv[1], sys.argv[2])
with store.locked("exactonline-app"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_holder_frees_the_lock_and_writes_never_wait_for_it(backend, tmp_path, request):
    location = (request.getfixturevalue("postgres_url") if backend == "postgresql"
                else f"sqlite:///{tmp_path / 'secrets.sqlite'}")
    key = generate_key()
    store = SecretStore(location, key)
    store.write("exactonline-app", {"refresh_token": "r1"})
    child = subprocess.Popen([sys.executable, "-c", HOLD, location, key],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(SecretStoreError, match="Timed out waiting for the lock"), \
                store.locked("exactonline-app", timeout=0.3):
            pass
        # The 0.3 s timeout, not the holder's 60 s (10 s leaves a busy machine room).
        assert time.monotonic() - started < 10
        # The holder's lock is not the document: a durable write needs no lock wait.
        store.write("exactonline-app", {"refresh_token": "r2"})
        assert store.read("exactonline-app") == {"refresh_token": "r2"}
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    with store.locked("exactonline-app", timeout=5):  # no stale lock after the kill
        pass


def test_tenants_sharing_one_client_id_keep_separate_tokens(location, monkeypatch):
    key = generate_key()
    for tenant in ("acme", "globex"):
        monkeypatch.setenv(TENANT_ENV, tenant)
        SecretStore(location, key).write("exactonline-sameapp", {"refresh_token": tenant})
        SecretStore(location, key).write("mailchimp", {"api_key": f"{tenant}-us6"})
    monkeypatch.delenv(TENANT_ENV)
    assert SecretStore(location, key).read("exactonline-sameapp") is None  # no tenant: none
    assert SecretStore(location, key, tenant="acme").read("exactonline-sameapp") == {
        "refresh_token": "acme"}
    with SecretStore(location, key, tenant="acme").locked("mailchimp"):
        pass  # leaves a lock file on SQLite and directories: remove takes it too
    assert sorted(remove_tenant(location, "acme")) == ["exactonline-sameapp", "mailchimp"]
    if "postgresql" not in location:
        assert not [p.name for p in Path(location.removeprefix("sqlite:///")).parent.rglob(
            "*acme*")]
    assert SecretStore(location, key, tenant="acme").read("mailchimp") is None
    monkeypatch.setenv(TENANT_ENV, "globex")
    assert SecretStore(location, key).read("exactonline-sameapp") == {"refresh_token": "globex"}
    assert SecretStore(location, key).remove_tenant("globex") == [
        "exactonline-sameapp", "mailchimp"]


def test_location_is_the_setting_else_the_fleet_database_else_the_project(monkeypatch, tmp_path):
    from secret_store import store_location

    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))
    assert store_location(None) == str(tmp_path / ".secrets")
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://fleet-db/exactmc")
    assert store_location("") == "postgresql://fleet-db/exactmc"
    assert store_location("/srv/acme-secrets") == "/srv/acme-secrets"


@pytest.mark.parametrize("backend", ["directory", "postgresql"])
def test_cli_sets_a_field_from_stdin(backend, tmp_path, request):
    key = generate_key()
    location = (request.getfixturevalue("postgres_url") if backend == "postgresql"
                else str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "secret_store.cli", "set", "mailchimp", "api_key",
         "--dir", location],
        input="abc123-us6\n",
        capture_output=True,
        text=True,
        env={"SECRET_STORE_KEY": key, "PATH": ""},
        check=True,
    )
    assert "abc123-us6" not in result.stdout + result.stderr
    assert SecretStore(location, key).read("mailchimp") == {"api_key": "abc123-us6"}
