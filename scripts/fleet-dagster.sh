#!/usr/bin/env bash
# Dagster for the fleet on this machine (issue 10): `bash scripts/fleet-dagster.sh [-p 3000]`.
# The UI on http://127.0.0.1:3000 (runs, logs, schedules, the webhook sensor), the daemon (run
# queue: 1 run per tenant, 2 in all; schedules; sensors) and the code location built from the
# tenant registry (exactmc-tenants). The tenants' runs need SECRET_STORE_KEY in this
# environment, and EXACTMC_DATABASE_URL when the fleet's state is on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.meltano/dagster}
export EXACTMC_PROJECT_ROOT=${EXACTMC_PROJECT_ROOT:-$PWD}
umask 077  # the run history, logs and the tenants' files stay private
mkdir -p "$DAGSTER_HOME"
# A dagster.yaml already there (e.g. fleet/dagster-postgres.yaml for several machines) is kept.
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp fleet/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
exec .venv/bin/dagster dev -w fleet/workspace.yaml "$@"
