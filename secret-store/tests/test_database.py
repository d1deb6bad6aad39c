"""The one-URL database layer: per-tenant, per-component namespaces on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa
from secret_store.database import (
    DATABASE_URL_ENV,
    TENANT_ENV,
    DatabaseError,
    drop_tenant,
    engine_for,
    sqlite_url,
    store_url,
)
from secret_store.webhook_inbox import InboxDatabase


def _table(engine: sa.Engine) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table("rows", metadata, sa.Column("k", sa.String(20), primary_key=True))
    metadata.create_all(engine)
    return table


def test_tenants_and_components_never_share_rows(database_url, monkeypatch):
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    url = store_url(None, "/unused.sqlite")
    assert url == database_url
    engines = {(tenant, component): engine_for(url, component, tenant)
               for tenant in ("acme", "globex") for component in ("audit", "mapper")}
    for (tenant, component), engine in engines.items():
        table = _table(engine)  # same table name everywhere
        with engine.begin() as connection:
            connection.execute(table.insert(), {"k": f"{tenant}-{component}"})
    for (tenant, component), engine in engines.items():
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT k FROM rows")).scalars().all()
        assert rows == [f"{tenant}-{component}"]
    dropped = drop_tenant(database_url, "acme")
    assert len(dropped) == 2
    engine = engine_for(url, "audit", "globex")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT k FROM rows")).scalars().all() == [
            "globex-audit"]


def test_the_process_tenant_comes_from_the_environment(postgres_url, monkeypatch):
    monkeypatch.setenv(TENANT_ENV, "acme")
    engine = engine_for(postgres_url, "audit")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT current_schema()")).scalar() == "acme__audit"


def test_own_setting_wins_and_paths_become_sqlite_urls(monkeypatch, tmp_path):
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://db/fleet")
    assert store_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert store_url(str(tmp_path / "a.sqlite")) == f"sqlite:///{tmp_path / 'a.sqlite'}"
    monkeypatch.delenv(DATABASE_URL_ENV)
    assert store_url(None, tmp_path / "b.sqlite") == f"sqlite:///{tmp_path / 'b.sqlite'}"


@pytest.mark.parametrize("name", ["", "Acme", "a-b", "1x", "x" * 41, "a;drop"])
def test_bad_tenant_names_are_refused(name):
    with pytest.raises(DatabaseError):
        engine_for("sqlite://", "audit", name)


def _pragmas(engine: sa.Engine) -> tuple[str, int]:
    with engine.connect() as connection:
        return (connection.exec_driver_sql("PRAGMA journal_mode").scalar(),
                connection.exec_driver_sql("PRAGMA synchronous").scalar())


def test_sqlite_store_files_use_wal_with_normal_sync(tmp_path):
    """Issue 9: a commit's fsyncs were a large share of a run; WAL + synchronous=NORMAL."""
    engine = engine_for(sqlite_url(tmp_path / "audit.sqlite"), "target_mailchimp")
    assert _pragmas(engine) == ("wal", 1)  # 1 = NORMAL
    memory = engine_for("sqlite://", "target_mailchimp")
    assert _pragmas(memory)[0] == "memory"  # no file, nothing to change


def test_a_store_asking_for_full_sync_keeps_it(tmp_path):
    """The webhook inbox answers 200 only once a delivery is synced: its own FULL wins."""
    inbox = InboxDatabase(sqlite_url(tmp_path / "inbox.sqlite"))
    assert _pragmas(inbox.engine) == ("wal", 2)  # 2 = FULL


def test_a_commit_survives_a_killed_writer(tmp_path):
    """WAL + NORMAL: what was committed before SIGKILL is there for the next opener."""
    path = tmp_path / "killed.sqlite"
    script = (
        "import os, signal, sys\n"
        "from secret_store.database import engine_for, sqlite_url\n"
        "engine = engine_for(sqlite_url(sys.argv[1]), 'target_mailchimp')\n"
        "with engine.begin() as c:\n"
        "    c.exec_driver_sql('CREATE TABLE t (k INTEGER PRIMARY KEY)')\n"
        "    c.exec_driver_sql('INSERT INTO t VALUES (1)')\n"
        "connection = engine.connect()\n"
        "connection.exec_driver_sql('INSERT INTO t VALUES (2)')  # open, never committed\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert (tmp_path / "killed.sqlite-wal").exists()  # the commit is only in the WAL yet
    fresh = sa.create_engine(sqlite_url(path))
    with fresh.connect() as connection:
        assert connection.exec_driver_sql("SELECT k FROM t").scalars().all() == [1]
    fresh.dispose()
