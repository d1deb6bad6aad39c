"""Tenants run through `run_tenant_job`, at the same time, in one Meltano project."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import e2e_expectation as expectation
import pytest
import sqlalchemy as sa
from exactmc_fleet.cli import main as cli_main
from exactmc_fleet.registry import TenantRegistry
from exactmc_fleet.runner import run_tenant_job, tenant_sys_dir
from secret_store import SecretStore
from secret_store.leaks import find_secrets

STATE_ID = "dev:tap-exactonline-to-target-mailchimp"


def run_all_at_once(project: Path, env: dict[str, str], tenants: list[Any], logs: Path,
                    by_cli: tuple[str, ...] = (),
                    ) -> tuple[dict[str, int], dict[str, tuple[float, float]]]:
    """Each tenant's job at once, through `run_tenant_job` or (`by_cli`) `exactmc-tenants run`
    in process (its environment is then os.environ)."""
    codes: dict[str, int] = {}
    spans: dict[str, tuple[float, float]] = {}

    def run(item: Any) -> None:
        start = time.monotonic()
        name = item.tenant.name
        codes[name] = cli_main(["run", name]) if name in by_cli else run_tenant_job(
            project, item.tenant, base_env=env, log_path=logs / f"{name}.log", timeout=300)
        spans[name] = (start, time.monotonic())

    threads = [threading.Thread(target=run, args=(item,)) for item in tenants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes, spans


def assert_audience_is_its_companys(item: Any, others: list[Any]) -> None:
    expected, live = expectation.assert_mailchimp_holds(item.exact, item.mailchimp,
                                                        item.tenant.name)
    foreign = set().union(*(expectation.expected_state(o.exact).members for o in others))
    assert not (set(live) - set(expected.members)) & foreign


def bookmarks(state: dict[str, Any]) -> dict[str, Any]:
    return (state.get("singer_state") or {}).get("bookmarks") or {}


def test_tenants_run_at_once_each_into_its_own_audience_and_a_broken_one_fails_alone(
    fleet_project: Path, fleet_env: dict[str, str], sandbox_tenant: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    acme = sandbox_tenant("acme", seed=31, accounts_per_division=8)
    globex = sandbox_tenant("globex", seed=32, accounts_per_division=8)
    broken = sandbox_tenant("broken", seed=33, accounts_per_division=2, wrong_client_secret=True)
    assert acme.tenant.exact_client_id == globex.tenant.exact_client_id  # one Exact app

    codes, spans = run_all_at_once(fleet_project, fleet_env, [acme, globex, broken], tmp_path)

    logs = {name: (tmp_path / f"{name}.log").read_text()[-3000:] for name in codes}
    assert codes["acme"] == 0 and codes["globex"] == 0, logs
    assert codes["broken"] != 0, logs["broken"]
    assert "invalid_client" in (tmp_path / "broken.log").read_text()
    assert max(spans["acme"][0], spans["globex"][0]) < min(spans["acme"][1], spans["globex"][1])
    assert_audience_is_its_companys(acme, [globex, broken])
    assert_audience_is_its_companys(globex, [acme, broken])
    assert broken.mailchimp.members() == []

    # Each tenant's run files and stores in its own system dir, linked to the project's plugins;
    # nothing of a run in the project's own (but Meltano's database).
    for name in ("acme", "globex"):
        sys_dir = tenant_sys_dir(fleet_project, name)
        assert (sys_dir / "extractors").is_symlink()
        assert (sys_dir / "run" / "tap-exactonline").is_dir()
        assert (sys_dir / "mapper-exact-mailchimp").is_dir()
        assert (sys_dir / "target-mailchimp").is_dir()
    shared = sorted(p.name for p in (fleet_project / ".meltano").iterdir())
    assert not set(shared) & {"run", "mapper-exact-mailchimp", "target-mailchimp",
                              "tap-exactonline", "webhooks", "logs"}, shared
    # Each its own bookmarks, under state IDs of its own, in the project's system database.
    with sqlite3.connect(fleet_project / ".meltano" / "meltano.db") as db:
        states = {row[0]: json.loads(row[1]) for row in db.execute(
            "SELECT state_id, completed_state FROM state")}
    assert set(states) == {f"{STATE_ID}:acme", f"{STATE_ID}:globex"}, set(states)
    acme_marks, globex_marks = (bookmarks(states[f"{STATE_ID}:{n}"]) for n in ("acme", "globex"))
    assert acme_marks and globex_marks and acme_marks != globex_marks

    # No secret in any file the runs wrote: system dirs, Meltano's database, the logs.
    for item in (acme, globex, broken):
        assert find_secrets([fleet_project / ".meltano", tmp_path / f"{item.tenant.name}.log"],
                            item.secrets) == []

    # Removing one tenant leaves the other's state, secrets and files alone.
    registry_url = f"sqlite:///{tmp_path / 'tenants.sqlite'}"
    for key, value in {**fleet_env, "MELTANO_PROJECT_ROOT": str(fleet_project),
                       "TENANTS_REGISTRY_URL": registry_url}.items():
        monkeypatch.setenv(key, value)
    registry = TenantRegistry(registry_url)
    registry.add(acme.tenant)
    registry.add(globex.tenant)
    assert cli_main(["remove", "acme", "--yes"]) == 0, capsys.readouterr()
    with sqlite3.connect(fleet_project / ".meltano" / "meltano.db") as db:
        assert [row[0] for row in db.execute("SELECT state_id FROM state")] == [
            f"{STATE_ID}:globex"]
    key = fleet_env["SECRET_STORE_KEY"]
    assert SecretStore(fleet_project / ".secrets", key, tenant="acme").read("mailchimp") is None
    assert SecretStore(fleet_project / ".secrets", key, tenant="globex").read("mailchimp")
    assert not tenant_sys_dir(fleet_project, "acme").exists()
    assert (tenant_sys_dir(fleet_project, "globex") / "run").is_dir()


def test_on_postgresql_meltano_state_and_every_store_are_in_the_one_database(
    fleet_project: Path, fleet_env: dict[str, str], sandbox_tenant: Any, tmp_path: Path,
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**fleet_env, "EXACTMC_DATABASE_URL": postgres_url}
    acme = sandbox_tenant("acme", seed=51, accounts_per_division=5, database_url=postgres_url)
    globex = sandbox_tenant("globex", seed=52, accounts_per_division=5,
                            database_url=postgres_url)

    for key, value in {**env, "MELTANO_PROJECT_ROOT": str(fleet_project)}.items():
        monkeypatch.setenv(key, value)
    registry = TenantRegistry()  # on PostgreSQL too
    registry.add(acme.tenant)
    registry.add(globex.tenant)

    # acme by `exactmc-tenants run acme`, globex by run_tenant_job, at once.
    codes, _ = run_all_at_once(fleet_project, env, [acme, globex], tmp_path, by_cli=("acme",))

    assert codes == {"acme": 0, "globex": 0}, (tmp_path / "globex.log").read_text()[-3000:]
    capsys.readouterr()
    assert cli_main(["list", "--format", "json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["acme"]["last_run"]["exit_code"] == 0
    assert listed["globex"]["last_run"] is None  # run_tenant_job alone records nothing
    assert_audience_is_its_companys(acme, [globex])
    assert_audience_is_its_companys(globex, [acme])
    assert not (fleet_project / ".meltano" / "meltano.db").exists()
    engine = sa.create_engine(postgres_url)
    with engine.connect() as db:
        state_ids = {row[0] for row in db.execute(sa.text("SELECT state_id FROM meltano.state"))}
        schemas = {row[0] for row in db.execute(sa.text("SELECT nspname FROM pg_namespace"))}
    assert state_ids == {f"{STATE_ID}:acme", f"{STATE_ID}:globex"}
    for name in ("acme", "globex"):
        assert {f"{name}__mapper", f"{name}__target_mailchimp"} <= schemas, schemas
        # Nothing durable left in files: every store is in PostgreSQL.
        files = [p.relative_to(fleet_project) for p in tenant_sys_dir(fleet_project, name).rglob(
            "*") if p.is_file() and p.suffix in (".sqlite", ".jsonl", ".db", ".enc")
            and "run" not in p.relative_to(tenant_sys_dir(fleet_project, name)).parts[:1]]
        assert files == [], files
    assert not (fleet_project / ".secrets").exists()

    # Removing a tenant drops its schemas, state and secrets; the other keeps its own.
    assert cli_main(["remove", "acme", "--yes"]) == 0, capsys.readouterr()
    with engine.connect() as db:
        state_ids = {row[0] for row in db.execute(sa.text("SELECT state_id FROM meltano.state"))}
        schemas = {row[0] for row in db.execute(sa.text("SELECT nspname FROM pg_namespace"))}
    assert state_ids == {f"{STATE_ID}:globex"}
    assert not {s for s in schemas if s.startswith("acme__")}
    assert "globex__mapper" in schemas
    key = env["SECRET_STORE_KEY"]
    assert SecretStore(postgres_url, key, tenant="acme").read("mailchimp") is None
    assert SecretStore(postgres_url, key, tenant="globex").read("mailchimp")
    assert [t.name for t in registry.all()] == ["globex"]
    engine.dispose()
