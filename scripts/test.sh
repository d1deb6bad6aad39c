#!/usr/bin/env bash
# Set up everything and run the whole test suite (the plugins' own tests and the end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two workers (pytest-xdist): most tests wait on sandboxes and subprocesses, so two at a time
# roughly halve the suite on a 2-core machine. PYTEST_WORKERS=0 runs them in this process.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
