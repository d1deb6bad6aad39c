"""The fleet's Dagster definitions, its run queue and the webhook run requests (fast: no run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from exactmc_fleet.dagster.definitions import build_definitions
from exactmc_fleet.dagster.requests import RunRequests
from exactmc_fleet.registry import Tenant, TenantRegistry

FLEET = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry(tmp_path: Path) -> TenantRegistry:
    registry = TenantRegistry(f"sqlite:///{tmp_path / 'tenants.sqlite'}")
    registry.add(Tenant("acme", "app-1", schedule="*/15 * * * *"))
    registry.add(Tenant("globex", "app-2", schedule="30 6 * * 1-5", paused=True))
    return registry


def test_a_job_per_tenant_and_meltano_job_with_schedules_paused_stopped(
    registry: TenantRegistry, tmp_path: Path,
) -> None:
    defs = build_definitions(registry.all(), root=tmp_path, registry_url=registry.url)
    repository = defs.get_repository_def()  # validates the whole set
    assert sorted(job.name for job in repository.get_all_jobs()) == sorted(
        f"{tenant}__{job}" for tenant in ("acme", "globex")
        for job in ("exactonline_to_mailchimp", "mailchimp_to_exactonline", "reconcile"))
    job = defs.get_job_def("acme__exactonline_to_mailchimp")
    assert job.tags["tenant"] == "acme"
    (node,) = job.graph.node_defs
    assert node.retry_policy.backoff == dg.Backoff.EXPONENTIAL
    assert node.retry_policy.max_retries >= 2 and node.retry_policy.delay > 0

    schedules = {s.name: s for s in repository.schedule_defs}
    assert len(schedules) == 6
    acme = schedules["acme__exactonline_to_mailchimp__schedule"]
    assert (acme.cron_schedule, acme.job_name) == ("*/15 * * * *",
                                                   "acme__exactonline_to_mailchimp")
    assert acme.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedules["acme__reconcile__schedule"].cron_schedule == "0 3 L * *"
    globex = schedules["globex__mailchimp_to_exactonline__schedule"]
    assert globex.cron_schedule == "30 6 * * 1-5"
    assert {s.default_status for name, s in schedules.items() if name.startswith("globex")} == {
        dg.DefaultScheduleStatus.STOPPED}
    assert all(s.tags["tenant"] == name.split("__")[0] for name, s in schedules.items())


def test_a_tenant_paused_after_loading_is_not_run_by_its_schedule(
    registry: TenantRegistry, tmp_path: Path,
) -> None:
    defs = build_definitions(registry.all(), root=tmp_path, registry_url=registry.url)
    schedule = defs.get_repository_def().get_schedule_def(
        "acme__exactonline_to_mailchimp__schedule")

    def tick() -> list[dg.RunRequest]:
        with dg.build_schedule_context() as context:
            return schedule.evaluate_tick(context).run_requests or []

    assert [r.tags["tenant"] for r in tick()] == ["acme"]
    registry.set_paused("acme", True)  # no reload of the code location
    assert tick() == []


def test_the_code_location_loads_the_registry(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What `dagster dev -m exactmc_fleet.dagster.location` loads: the registry's tenants."""
    monkeypatch.setenv("EXACTMC_DATABASE_URL", f"sqlite:///{tmp_path / 'fleet.sqlite'}")
    for name in ("acme", "globex", "wayne"):
        TenantRegistry().add(Tenant(name, f"app-{name}"))
    from exactmc_fleet.dagster import definitions

    def tenants() -> set[str]:
        defs = definitions.definitions_from_registry()
        return {job.tags["tenant"] for job in defs.get_repository_def().get_all_jobs()}

    assert tenants() == {"acme", "globex", "wayne"}
    # One code location per machine: the shards split the tenants, each tenant in exactly one.
    shards = []
    for shard in ("1/2", "2/2"):
        monkeypatch.setenv("EXACTMC_FLEET_SHARD", shard)
        shards.append(tenants())
    assert shards == [{"acme", "globex"}, {"wayne"}]  # a stable hash of the name
    assert all(definitions.in_shard(name, "1/1") for name in ("acme", "globex"))
    with pytest.raises(ValueError, match="expected i/n"):
        definitions.in_shard("acme", "3/2")


def test_the_run_queue_allows_one_run_per_tenant_and_two_in_all(tmp_path: Path) -> None:
    """Both instance files, validated by Dagster's own schema (opening them would migrate a
    storage: seconds): the queue's limits as issue 10 asks, storage on PostgreSQL for many."""
    from dagster._core.instance.config import dagster_instance_config

    for config in ("dagster.yaml", "dagster-postgres.yaml"):
        home = tmp_path / config
        home.mkdir()
        shutil.copy(FLEET / config, home / "dagster.yaml")
        settings, _ = dagster_instance_config(str(home))
        assert settings["concurrency"]["runs"] == {
            "max_concurrent_runs": 2,
            "tag_concurrency_limits": [
                {"key": "tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]}
        # No run_coordinator section: Dagster's default, the QueuedRunCoordinator, applies.
        assert "run_coordinator" not in settings
        assert ("postgres" in settings.get("storage", {})) == (config != "dagster.yaml")


def test_run_requests_coalesce_and_the_sensor_runs_each_once(database_url: str) -> None:
    registry = TenantRegistry(database_url)
    registry.add(Tenant("acme", "app-1"))
    registry.add(Tenant("globex", "app-2", paused=True))
    requests = RunRequests(database_url)
    requests.request("acme", "exactonline-to-mailchimp")
    requests.request("acme", "exactonline-to-mailchimp")  # a burst of webhooks: one run
    requests.request("acme", "mailchimp-to-exactonline")
    requests.request("globex", "exactonline-to-mailchimp")  # paused: no run
    requests.request("wayne", "exactonline-to-mailchimp")  # another code location's tenant
    with pytest.raises(ValueError, match="Unknown job"):
        requests.request("acme", "drop-everything")

    defs = build_definitions(registry.all(), registry_url=database_url)
    sensor = defs.get_repository_def().get_sensor_def("webhook_run_requests")
    with dg.build_sensor_context(definitions=defs) as context:
        result = sensor.evaluate_tick(context)
    runs = sorted((r.job_name, r.tags["tenant"], r.tags["trigger"]) for r in result.run_requests)
    assert runs == [("acme__exactonline_to_mailchimp", "acme", "webhook"),
                    ("acme__mailchimp_to_exactonline", "acme", "webhook")]
    forward = next(r for r in result.run_requests if "exactonline_to" in r.job_name)
    assert forward.run_config["ops"]["acme__exactonline_to_mailchimp__run"]["config"] == {
        "sync_scope": "pending_webhooks"}
    for request in result.run_requests:  # what the daemon will launch is valid for the job
        dg.validate_run_config(defs.get_job_def(request.job_name), request.run_config)
    # Each request of this location's tenants is done; the other location's is left to it.
    assert [(r.tenant, r.job) for r in RunRequests(database_url).pending()] == [
        ("wayne", "exactonline-to-mailchimp")]
    with dg.build_sensor_context(definitions=defs) as context:
        assert sensor.evaluate_tick(context).run_requests == []


def test_the_trigger_command_asks_the_registry_dagster_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`python -m exactmc_fleet.dagster.requests acme` under a tenant's webhook service (its
    MELTANO_SYS_DIR_ROOT is the tenant's) writes to the project's registry database."""
    from exactmc_fleet.dagster import requests as run_requests

    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / ".meltano" / "tenants" / "acme"))
    assert run_requests.main(["acme", "mailchimp-to-exactonline"]) == 0
    url = f"sqlite:///{tmp_path / '.meltano' / 'fleet' / 'tenants.sqlite'}"
    assert [(r.tenant, r.job) for r in RunRequests(url).pending()] == [
        ("acme", "mailchimp-to-exactonline")]


def test_two_machines_share_one_run_queue_on_postgresql(
    postgres_url: str, registry: TenantRegistry, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`fleet/dagster-postgres.yaml` on a real PostgreSQL: a run made through one machine's
    instance is in the other's run storage (the queue is the runs storage's QUEUED runs), with
    its tenant tag, and both coordinate with the same queued coordinator and limits."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    for name, value in (("HOST", url.host), ("PORT", str(url.port)), ("DB", url.database),
                        ("USER", url.username), ("PASSWORD", "")):
        monkeypatch.setenv(f"DAGSTER_PG_{name}", value)
    machines = []
    for machine in ("one", "two"):
        home = tmp_path / machine
        home.mkdir()
        shutil.copy(FLEET / "dagster-postgres.yaml", home / "dagster.yaml")
        machines.append(dg.DagsterInstance.from_config(str(home)))
    one, two = machines
    job = build_definitions(registry.all(), root=tmp_path, registry_url=registry.url
                            ).get_job_def("acme__exactonline_to_mailchimp")
    run = one.create_run_for_job(job, tags={"tenant": "acme"})
    seen = two.get_runs(filters=dg.RunsFilter(tags={"tenant": "acme"}))
    assert [r.run_id for r in seen] == [run.run_id]
    for instance in machines:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
    for instance in machines:
        instance.dispose()
