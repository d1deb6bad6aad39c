"""Forget a tenant: its Meltano state, secrets, database schemas and files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from secret_store.database import DATABASE_URL_ENV, drop_tenant
from sqlalchemy.engine import make_url

from exactmc_fleet.registry import Tenant
from exactmc_fleet.runner import invoke_for_tenant, tenant_environment, tenant_sys_dir
from exactmc_fleet.secrets import remove_tenant_secrets


def remove_tenant(project_root: Path, tenant: Tenant) -> list[str]:
    """Remove everything `tenant`'s runs left; a line per thing removed (the registry row is
    the caller's, removed last so that a failure here can be retried)."""
    env = tenant_environment(project_root, tenant)
    done = [f"Meltano state {state_id} cleared."
            for state_id in _clear_state(project_root, tenant)]
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


def _clear_state(project_root: Path, tenant: Tenant) -> list[str]:
    listed = invoke_for_tenant(project_root, tenant, "meltano", "state", "list",
                               "--pattern", f"*:{tenant.name}", capture=True)
    assert isinstance(listed, subprocess.CompletedProcess)
    if listed.returncode != 0:
        raise RuntimeError(f"meltano state list failed: {listed.stderr[-2000:]}")
    state_ids = [line.strip() for line in listed.stdout.splitlines()
                 if line.strip().endswith(f":{tenant.name}")]
    for state_id in state_ids:
        cleared = invoke_for_tenant(project_root, tenant, "meltano", "state", "clear",
                                    "--force", state_id, capture=True)
        assert isinstance(cleared, subprocess.CompletedProcess)
        if cleared.returncode != 0:
            raise RuntimeError(f"meltano state clear {state_id} failed: "
                               f"{cleared.stderr[-2000:]}")
    return state_ids


def _rmtree_keeping_links(directory: Path) -> None:
    """Delete `directory`; its links to the project's plugin installations are unlinked, never
    followed (shutil.rmtree does not follow them either: this says so explicitly)."""
    for entry in directory.iterdir():
        if entry.is_symlink():
            entry.unlink()
    shutil.rmtree(directory)
