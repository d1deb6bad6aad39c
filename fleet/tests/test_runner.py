"""A tenant's environment and command, without running Meltano."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

from exactmc_fleet.registry import Tenant
from exactmc_fleet.runner import (
    TIMED_OUT,
    meltano_database_uri,
    meltano_run_command,
    run_tenant_job,
    tenant_environment,
    tenant_settings,
)

TIMEOUT_SECONDS = 30.0  # past Meltano's start and catalog discovery, into the tap's call


def migrated_project(root: Path) -> Path:
    """A project whose Meltano database exists (so no `meltano upgrade database` is needed)."""
    (root / ".meltano").mkdir(parents=True)
    with sqlite3.connect(root / ".meltano" / "meltano.db") as db:
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
    return root


def test_a_tenants_environment_is_its_own(tmp_path: Path) -> None:
    project = migrated_project(tmp_path / "project")
    shell = {"PATH": "/usr/bin", "SECRET_STORE_KEY": "k", "EXACTMC_DATABASE_URL": "",
             "MELTANO_SYS_DIR_ROOT": str(project / ".meltano"), "EXACTMC_TENANT": "other",
             # What a shell set up for one company exports: never another tenant's settings.
             "TARGET_MAILCHIMP_LIST_ID": "their-list", "TARGET_MAILCHIMP_STORE_ID": "theirs",
             "TAP_EXACTONLINE_DIVISIONS": "[999]", "MAPPER_EXACT_MAILCHIMP_STORE_URL": "x"}
    tenant = Tenant("acme", "app-1", region="be", divisions=(101, 102), list_id="L1",
                    settings={"TAP_EXACTONLINE_BASE_URL": "http://127.0.0.1:1/be"})
    env = tenant_environment(project, tenant, shell)

    sys_dir = project / ".meltano" / "tenants" / "acme"
    assert env["MELTANO_SYS_DIR_ROOT"] == str(sys_dir)
    assert stat.S_IMODE(sys_dir.stat().st_mode) == 0o700
    for kind in ("extractors", "loaders", "mappers", "utilities"):
        assert (sys_dir / kind).resolve() == (project / ".meltano" / kind).resolve()
    assert env["EXACTMC_TENANT"] == "acme"
    assert env["MELTANO_PROJECT_ROOT"] == str(project.resolve())
    assert env["MELTANO_DATABASE_URI"] == f"sqlite:///{project.resolve()}/.meltano/meltano.db"
    assert env["SECRET_STORE_KEY"] == "k" and env["PATH"] == "/usr/bin"
    assert env["TAP_EXACTONLINE_CLIENT_ID"] == env["TARGET_EXACTONLINE_CLIENT_ID"] == "app-1"
    assert env["TAP_EXACTONLINE_REGION"] == "be"
    assert env["TAP_EXACTONLINE_DIVISIONS"] == "[101, 102]"
    assert env["TAP_EXACTONLINE_ALL_DIVISIONS"] == "false"
    assert env["TARGET_MAILCHIMP_LIST_ID"] == env["TAP_MAILCHIMP_LIST_ID"] == "L1"
    assert "TARGET_MAILCHIMP_STORE_ID" not in env  # the shell's is not the tenant's
    assert "MAPPER_EXACT_MAILCHIMP_STORE_URL" not in env
    assert env["TAP_EXACTONLINE_BASE_URL"] == "http://127.0.0.1:1/be"
    assert meltano_run_command(tenant)[1:] == [
        "run", "--state-id-suffix", "acme", "exactonline-to-mailchimp"]


def test_all_divisions_when_none_are_named() -> None:
    env = tenant_settings(Tenant("acme", "app"))
    assert env["TAP_EXACTONLINE_ALL_DIVISIONS"] == env["TARGET_EXACTONLINE_ALL_DIVISIONS"] == (
        "true")
    assert "TAP_EXACTONLINE_DIVISIONS" not in env


def test_meltanos_database(tmp_path: Path, postgres_url: str) -> None:
    explicit = {"MELTANO_DATABASE_URI": "sqlite:////elsewhere.db",
                "EXACTMC_DATABASE_URL": postgres_url}
    assert meltano_database_uri(tmp_path, explicit) == "sqlite:////elsewhere.db"
    fleet_sqlite = {"EXACTMC_DATABASE_URL": f"sqlite:///{tmp_path}/fleet.sqlite"}
    assert meltano_database_uri(tmp_path, fleet_sqlite) == (
        f"sqlite:///{tmp_path}/.meltano/meltano.db")
    uri = meltano_database_uri(tmp_path, {"EXACTMC_DATABASE_URL": postgres_url})
    assert uri.startswith("postgresql+psycopg://") and "search_path%3Dmeltano" in uri
    import sqlalchemy as sa
    engine = sa.create_engine(uri)
    with engine.connect() as db:  # the schema exists and is the connection's first
        assert db.execute(sa.text("SELECT current_schema()")).scalar() == "meltano"
    engine.dispose()


def processes_of(sys_dir: Path) -> list[int]:
    """Live processes whose environment names `sys_dir` (a tenant's run and its plugins)."""
    needle = f"MELTANO_SYS_DIR_ROOT={sys_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_run_past_its_timeout_is_ended_with_its_plugins(
    fleet_project: Path, fleet_env: dict[str, str], sandbox_tenant: Any, tmp_path: Path,
) -> None:
    slow = sandbox_tenant("slowpoke", seed=5, accounts_per_division=2)
    # Exact holds the tap's first data call far past the run's timeout.
    slow.exact.add_fault(path=r"/api/v1/\d+/", kind="slow", delay=120.0)
    sys_dir = fleet_project.resolve() / ".meltano" / "tenants" / "slowpoke"
    seen_tap, stop = threading.Event(), threading.Event()

    def watch() -> None:  # the tap really started, so the timeout ends a running plugin
        while not stop.is_set():
            for pid in processes_of(sys_dir):
                try:
                    if b"tap-exactonline" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        seen_tap.set()
                except OSError:
                    continue
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    code = run_tenant_job(fleet_project, slow.tenant, timeout=TIMEOUT_SECONDS,
                          log_path=tmp_path / "run.log", base_env=fleet_env)
    stop.set()
    assert code == TIMED_OUT, (tmp_path / "run.log").read_text()[-3000:]
    assert seen_tap.is_set()
    assert time.monotonic() - started < TIMEOUT_SECONDS + 60
    assert processes_of(sys_dir) == []
    assert stat.S_IMODE((tmp_path / "run.log").stat().st_mode) == 0o600
