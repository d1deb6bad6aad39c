#!/usr/bin/env bash
# Set up everything and run the whole test suite (the plugins' own tests and the end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
