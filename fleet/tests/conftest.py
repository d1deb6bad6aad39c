"""Fleet fixtures: a Meltano project of its own and tenants wired to their own sandboxes.

`sandbox_tenant(name, seed=...)` starts an Exact and a Mailchimp sandbox, stores the tenant's
secrets where its runs read them (in its namespace of the encrypted store) and returns a
`SandboxTenant`; `fleet_env` is the base environment of the runs (the store's key).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_pipeline import MELTANO, ROOT, make_project
from exactmc_fleet.registry import Tenant
from fleet_sandbox import SandboxTenant, sandbox_settings, store_tenant_secrets
from secret_store import generate_key


@pytest.fixture(scope="session")
def fleet_plugins() -> None:
    """The project's plugins installed: the tenants' system dirs link to these installations.

    Under pytest-xdist once per test run, as `tests/conftest.py` does (same lock and marker: a
    second `meltano install` would rebuild the virtualenvs under running plugins). Without
    xdist, `tests/` runs first and installs them; this installs only what is missing.
    """
    from filelock import FileLock

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    marker = ROOT / ".meltano" / "installed-for-test-run"
    marker.parent.mkdir(exist_ok=True)
    venvs = [ROOT / ".meltano" / kind / name / "venv" for kind, name in (
        ("extractors", "tap-exactonline"), ("mappers", "mapper-exact-mailchimp"),
        ("loaders", "target-mailchimp"))]
    with FileLock(str(marker) + ".lock"):
        if run_id and marker.exists() and marker.read_text() == run_id:
            return
        if not run_id and all(venv.is_dir() for venv in venvs):
            return
        result = subprocess.run(
            [str(MELTANO), "install"], cwd=ROOT, capture_output=True, text=True, check=False,
            env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        marker.write_text(run_id)


@pytest.fixture
def fleet_project(fleet_plugins: None, tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


@pytest.fixture
def fleet_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MELTANO_", "EXACTMC_", "TAP_", "TARGET_", "MAPPER_"))}
    return {**env, "SECRET_STORE_KEY": generate_key(), "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}


@pytest.fixture
def sandbox_tenant(
    fleet_project: Path, fleet_env: dict[str, str], exact_sandbox_factory: Any,
    mailchimp_sandbox_factory: Any,
) -> Callable[..., SandboxTenant]:
    """Make a tenant with its own sandboxes (20 accounts per division) and stored secrets."""

    def make(name: str, seed: int, *, accounts_per_division: int = 20,
             wrong_client_secret: bool = False, database_url: str | None = None,
             **tenant_options: Any) -> SandboxTenant:
        exact = exact_sandbox_factory(accounts_per_division=accounts_per_division, seed=seed)
        mailchimp = mailchimp_sandbox_factory(latency=0.01)
        tenant = Tenant(name, exact.client_id, list_id=mailchimp.list_id,
                        settings=sandbox_settings(exact, mailchimp), **tenant_options)
        env = {**fleet_env, **({"EXACTMC_DATABASE_URL": database_url} if database_url else {})}
        secrets = {"client_secret": exact.client_secret, "api_key": mailchimp.api_key,
                   "refresh_token": exact.issue_refresh_token("nl"),
                   "store_key": fleet_env["SECRET_STORE_KEY"]}
        store_tenant_secrets(
            fleet_project, env, tenant,
            client_secret="wrong" if wrong_client_secret else secrets["client_secret"],
            refresh_token=secrets["refresh_token"], api_key=secrets["api_key"])
        return SandboxTenant(tenant, exact, mailchimp, secrets)

    return make
