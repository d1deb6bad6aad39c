#!/usr/bin/env bash
# One check for the whole job (exactonline-to-mailchimp): both connection checks, nothing synced.
# Why not a Meltano job: `meltano run` takes an extractor's or loader's command for a pipeline
# block, so the two commands are invoked one after the other here, and both always run.
# Usage: bash scripts/check.sh [--format json]   (json: one document per check)
# Exit status: the worse of the two: 0 all is well, 1 warnings only, 2 errors.
set -u
cd "$(dirname "$0")/.."
MELTANO=${MELTANO:-meltano}
command -v "$MELTANO" >/dev/null 2>&1 || MELTANO=.venv/bin/meltano
worst=0
for command in tap-exactonline:check target-mailchimp:check; do
  "$MELTANO" invoke "$command" "$@"
  status=$?
  [ "$status" -gt "$worst" ] && worst=$status
done
exit "$worst"
