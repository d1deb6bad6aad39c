"""Dagster runs the fleet: every tenant's Meltano jobs, on schedules and on webhook requests.

`dagster dev -m exactmc_fleet.dagster.location` (or `bash scripts/fleet-dagster.sh`) starts it
on one machine; `fleet/dagster.yaml` is the instance: the run queue allows one run per tenant
(tag `tenant`) and 2 runs across the fleet; `fleet/dagster-postgres.yaml` is the same on
PostgreSQL for several machines.

Why Dagster's own subprocess support and not `dagster-meltano`: dagster-meltano's last release
(1.5.5) is from October 2024, it requires Python < 3.12 and the deprecated `dagster-shell`,
and it was written against Meltano 2/3 (its repository tested "meltano version 3" last; we run
4.4). More to the point, it models ONE Meltano project with one environment: it builds jobs from
`meltano.yml` and runs them with the project's own settings, state IDs and `.meltano/`, which
is exactly what a fleet must not share. A tenant's run needs the fleet runner's environment
(its own system directory, `--state-id-suffix`, stores, `EXACTMC_TENANT`), so each job is one
op that runs `meltano_run_command(tenant, job)` with `tenant_environment(...)` as a subprocess
(`meltano_op.py`), streaming Meltano's output into Dagster's UI. `PipesSubprocessClient` was
the other candidate: it merges the run worker's environment into the child's and has no
timeout, and Meltano would not speak the Pipes protocol anyway, so a plain subprocess with
process-group termination is both smaller and stricter.
"""
