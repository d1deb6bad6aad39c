"""Dagster runs tenants' jobs in process (`execute_in_process`, Dagster's own test API) against
the sandboxes over real HTTP, through `meltano run`: each tenant's audience is what its Exact
company says it should be, and a tenant with bad credentials fails its own run (after its
retry) without touching the others. Fixtures: fleet/tests/conftest.py."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import e2e_expectation as expectation
from exactmc_fleet.dagster.definitions import build_definitions
from exactmc_fleet.registry import TenantRegistry

JOB = "exactonline_to_mailchimp"


def test_two_tenants_run_in_process_and_a_failing_tenant_fails_alone(
    sandbox_tenant: Callable[..., Any], fleet_project: Path, fleet_env: dict[str, str],
    tmp_path: Path,
) -> None:
    registry = TenantRegistry(f"sqlite:///{tmp_path / 'tenants.sqlite'}")
    tenants = {
        "acme": sandbox_tenant("acme", 41, accounts_per_division=10),
        "globex": sandbox_tenant("globex", 42, accounts_per_division=10),
        "initech": sandbox_tenant("initech", 43, accounts_per_division=10,
                                  wrong_client_secret=True),
    }
    for made in tenants.values():
        registry.add(made.tenant)
    defs = build_definitions(registry.all(), root=fleet_project, registry_url=registry.url,
                             retry_policy=dg.RetryPolicy(max_retries=1, delay=0.1),
                             base_env=fleet_env)

    def run(name: str) -> dg.ExecuteInProcessResult:
        return defs.get_job_def(f"{name}__{JOB}").execute_in_process(raise_on_error=False)

    started = time.monotonic()
    with ThreadPoolExecutor(len(tenants)) as pool:  # at once: the failing one beside the others
        results = dict(zip(tenants, pool.map(run, tenants), strict=True))
    print(f"3 tenants' runs through Dagster: {time.monotonic() - started:.1f} s")

    for name in ("acme", "globex"):
        assert results[name].success, name
        assert results[name].dagster_run.tags["tenant"] == name
        expectation.assert_mailchimp_holds(tenants[name].exact, tenants[name].mailchimp, name)
        assert registry.last_run(name).exit_code == 0

    failed = results["initech"]
    assert not failed.success
    events = failed.all_events
    assert sum(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in events) == 1
    failure = next(e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "Tenant initech: meltano run exactonline-to-mailchimp exited" in str(
        failure.event_specific_data.error)
    assert tenants["initech"].mailchimp.members() == []  # nothing written for it
    assert registry.last_run("initech").exit_code != 0
    # Each tenant ran in its own Meltano system directory, with its own log.
    logs = sorted(p.parent.parent.name for p in
                  (fleet_project / ".meltano" / "tenants").glob("*/logs/dagster-*.log"))
    assert logs == ["acme", "globex", "initech"]
    assert os.stat(next((fleet_project / ".meltano" / "tenants").glob(
        "acme/logs/*.log"))).st_mode & 0o077 == 0
