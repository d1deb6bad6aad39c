"""Fleet fixtures: a Meltano project of its own and tenants wired to their own sandboxes.

`sandbox_tenant(name, seed=...)` starts an Exact and a Mailchimp sandbox, stores the tenant's
secrets where its runs read them (in its namespace of the encrypted store) and returns a
`SandboxTenant`; `fleet_env` is the base environment of the runs (the store's key).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_pipeline import install_plugins_once, make_project
from exactmc_fleet.registry import Tenant
from fleet_sandbox import SandboxTenant, sandbox_settings, store_tenant_secrets
from secret_store import generate_key


@pytest.fixture(scope="session")
def fleet_plugins() -> None:
    """The project's plugins installed: the tenants' system dirs link to these installations."""
    install_plugins_once()


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
