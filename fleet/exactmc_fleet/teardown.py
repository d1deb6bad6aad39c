"""Forget a tenant: its Meltano state, secrets, database schemas and files."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from secret_store.database import DATABASE_URL_ENV, drop_tenant
from sqlalchemy.engine import make_url

from exactmc_fleet.registry import Tenant
from exactmc_fleet.runner import tenant_environment, tenant_sys_dir
from exactmc_fleet.secrets import remove_tenant_secrets


def remove_tenant(project_root: Path, tenant: Tenant) -> list[str]:
    """Remove everything `tenant`'s runs left; a line per thing removed (the registry row is
    the caller's, removed last so that a failure here can be retried)."""
    env = tenant_environment(project_root, tenant)
    done = [f"Meltano state {state_id} cleared."
            for state_id in _clear_state(env, tenant)]
    done += [f"Secret {name} removed." for name in remove_tenant_secrets(tenant, env)]
    fleet_url = env.get(DATABASE_URL_ENV, "").strip()
    if fleet_url:
        kind = "file" if make_url(fleet_url).get_backend_name() == "sqlite" else "schema"
        done += [f"Database {kind} {name} dropped."
                 for name in drop_tenant(fleet_url, tenant.name)]
    sys_dir = tenant_sys_dir(project_root, tenant.name)
    if sys_dir.exists():
        _rmtree_keeping_links(sys_dir)
        done.append(f"Directory {sys_dir} removed.")
    return done


def _clear_state(env: dict[str, str], tenant: Tenant) -> list[str]:
    """Delete the tenant's Meltano state and run rows (IDs ending `:<tenant>`, the runner's
    `--state-id-suffix`) from Meltano's system database, the project's state backend.

    Straight SQL on Meltano's `state` and `runs` tables: `meltano state clear` takes seconds
    per state ID. A project with another state backend (MELTANO_STATE_BACKEND_URI) clears its
    state with `meltano state clear`.
    """
    backend = env.get("MELTANO_STATE_BACKEND_URI", "systemdb")
    if backend != "systemdb":
        raise RuntimeError(f"State backend {backend}: clear {tenant.name}'s state with "
                           f"`meltano state list --pattern '*:{tenant.name}'` and "
                           "`meltano state clear`.")
    engine = sa.create_engine(env["MELTANO_DATABASE_URI"])
    suffix = {"pattern": f"%:{tenant.name}"}
    try:
        with engine.begin() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            if "state" not in tables:
                return []
            state_ids = [row[0] for row in connection.execute(sa.text(
                "SELECT state_id FROM state WHERE state_id LIKE :pattern"), suffix)]
            connection.execute(sa.text("DELETE FROM state WHERE state_id LIKE :pattern"), suffix)
            if "runs" in tables:
                connection.execute(sa.text("DELETE FROM runs WHERE job_name LIKE :pattern"),
                                   suffix)
    finally:
        engine.dispose()
    return [state_id for state_id in state_ids if state_id.endswith(f":{tenant.name}")]


def _rmtree_keeping_links(directory: Path) -> None:
    """Delete `directory`; its links to the project's plugin installations are unlinked, never
    followed (shutil.rmtree does not follow them either: this says so explicitly)."""
    for entry in directory.iterdir():
        if entry.is_symlink():
            entry.unlink()
    shutil.rmtree(directory)
