"""The fleet's Dagster definitions, built from the tenant registry when the code loads.

Per tenant, one job per Meltano job (`<tenant>__exactonline_to_mailchimp`,
`<tenant>__mailchimp_to_exactonline`, `<tenant>__reconcile`), each one op running
`meltano run` for that tenant (`meltano_op.py`), tagged `tenant=<name>` (the run queue's
per-tenant limit in `dagster.yaml` keys on it) and retried with exponential backoff.
Schedules: both directions on the tenant's cron, reconcile at month end; a paused tenant's
schedules are STOPPED, and a tenant paused after the location loaded skips its ticks. One
sensor turns run requests (`requests.py`: the webhook service's trigger in a fleet) into runs.
A tenant added or removed shows after a reload of the code location (the UI's "Reload", or a
restart of the code server).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg

from exactmc_fleet.dagster.meltano_op import job_name, meltano_job_op, op_name
from exactmc_fleet.dagster.requests import JOBS, RunRequests, project_registry_url
from exactmc_fleet.registry import Tenant, TenantRegistry

FORWARD, BACK, RECONCILE = JOBS
RECONCILE_CRON = "0 3 L * *"  # 03:00 on the month's last day, as in meltano.yml
TIMEZONE = "Europe/Amsterdam"  # Exact Online's and the companies' clock
TIMEOUT_SECONDS = 3 * 3600.0
# 3 retries after 1, 2 and 4 minutes (±jitter): rides out a sandbox/API hiccup or Meltano's
# per-job lock, and stays under Exact's 10 errors per endpoint and hour for a bad credential.
RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=60, backoff=dg.Backoff.EXPONENTIAL,
                              jitter=dg.Jitter.PLUS_MINUS)
SENSOR_SECONDS = 15
PROJECT_ROOT_ENV = "EXACTMC_PROJECT_ROOT"
SHARD_ENV = "EXACTMC_FLEET_SHARD"


def project_root() -> Path:
    """The Meltano project: EXACTMC_PROJECT_ROOT, else this repository (editable install),
    else the working directory."""
    if os.environ.get(PROJECT_ROOT_ENV):
        return Path(os.environ[PROJECT_ROOT_ENV]).resolve()
    repository = Path(__file__).resolve().parents[3]
    return repository if (repository / "meltano.yml").exists() else Path.cwd()


def tenant_jobs(tenant: Tenant, *, root: Path, registry_url: str | None,
                retry_policy: dg.RetryPolicy | None, timeout: float,
                base_env: Mapping[str, str] | None) -> dict[str, dg.JobDefinition]:
    jobs = {}
    for job in JOBS:
        run_op = meltano_job_op(tenant.name, job, project_root=root, registry_url=registry_url,
                                retry_policy=retry_policy, timeout=timeout, base_env=base_env)

        @dg.job(name=job_name(tenant.name, job), tags={"tenant": tenant.name,
                                                         "meltano_job": job},
                description=f"meltano run {job} for tenant {tenant.name}")
        def one_run() -> None:
            run_op()  # noqa: B023 (the job is built here, inside this iteration)

        jobs[job] = one_run
    return jobs


def tenant_schedules(tenant: Tenant, jobs: dict[str, dg.JobDefinition],
                     registry_url: str | None) -> list[dg.ScheduleDefinition]:
    status = (dg.DefaultScheduleStatus.STOPPED if tenant.paused
              else dg.DefaultScheduleStatus.RUNNING)
    crons = {FORWARD: tenant.schedule, BACK: tenant.schedule, RECONCILE: RECONCILE_CRON}

    def not_paused(_context: dg.ScheduleEvaluationContext) -> bool:
        # Paused since the code location loaded (no reload yet): the registry decides.
        return not TenantRegistry(registry_url).get(tenant.name).paused

    return [dg.ScheduleDefinition(
        name=f"{job_name(tenant.name, job)}__schedule", job=jobs[job], cron_schedule=cron,
        execution_timezone=TIMEZONE, default_status=status, should_execute=not_paused,
        tags={"tenant": tenant.name, "trigger": "schedule"}) for job, cron in crons.items()]


def run_request_sensor(jobs: dict[tuple[str, str], dg.JobDefinition],
                       registry_url: str | None) -> dg.SensorDefinition:

    @dg.sensor(name="webhook_run_requests", jobs=list(jobs.values()) or None,
               minimum_interval_seconds=SENSOR_SECONDS,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Runs the tenants' jobs that webhooks asked for (run_requests).")
    def webhook_run_requests(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        store = RunRequests(registry_url)
        # Only this location's tenants: with shards, another location serves the rest.
        rows = [row for row in store.pending() if (row.tenant, row.job) in jobs]
        if not rows:
            return dg.SensorResult(run_requests=[])
        paused = {t.name for t in TenantRegistry(registry_url).all() if t.paused}
        requests = []
        for row in rows:
            if row.tenant in paused:
                context.log.info(f"Dropped run request {row.run_key}: the tenant is paused.")
                continue
            scope = "pending_webhooks" if row.job == FORWARD else ""
            requests.append(dg.RunRequest(
                run_key=row.run_key, job_name=jobs[(row.tenant, row.job)].name,
                run_config={"ops": {op_name(row.tenant, row.job):
                                    {"config": {"sync_scope": scope}}}},
                tags={"tenant": row.tenant, "trigger": "webhook"}))
        store.done(rows)
        return dg.SensorResult(run_requests=requests)

    return webhook_run_requests


def build_definitions(tenants: Iterable[Tenant], *, root: Path | None = None,
                      registry_url: str | None = None,
                      retry_policy: dg.RetryPolicy | None = RETRY_POLICY,
                      timeout: float = TIMEOUT_SECONDS,
                      base_env: Mapping[str, str] | None = None) -> dg.Definitions:
    """The Definitions of `tenants` (what `location.py` builds from the registry).

    `base_env`: what the tenants' runs start from (default: the run worker's environment,
    read when the run starts).
    """
    tenants = list(tenants)
    root = root or project_root()
    jobs: dict[tuple[str, str], dg.JobDefinition] = {}
    schedules: list[dg.ScheduleDefinition] = []
    for tenant in tenants:
        mine = tenant_jobs(tenant, root=root, registry_url=registry_url,
                           retry_policy=retry_policy, timeout=timeout, base_env=base_env)
        jobs.update({(tenant.name, job): definition for job, definition in mine.items()})
        schedules += tenant_schedules(tenant, mine, registry_url)
    return dg.Definitions(jobs=list(jobs.values()), schedules=schedules,
                          sensors=[run_request_sensor(jobs, registry_url)])


def in_shard(name: str, shard: str | None) -> bool:
    """Whether tenant `name` belongs to `shard` ("i/n", 1-based): a stable split of the
    tenants over n code locations, one per machine (README "Running a fleet with Dagster")."""
    if not shard:
        return True
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise ValueError(f"{SHARD_ENV}={shard!r}: expected i/n, e.g. 1/3.")
    return zlib.crc32(name.encode()) % int(count) == int(index) - 1


def definitions_from_registry(registry_url: str | None = None) -> dg.Definitions:
    """The registry's tenants (those of this machine's shard, `EXACTMC_FLEET_SHARD`)."""
    shard = os.environ.get(SHARD_ENV, "").strip() or None
    # Resolved once here, so the runs and the sensor read the registry this location read.
    registry_url = registry_url or project_registry_url()
    tenants = [t for t in TenantRegistry(registry_url).all() if in_shard(t.name, shard)]
    return build_definitions(tenants, registry_url=registry_url)
