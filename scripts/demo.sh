#!/usr/bin/env bash
# Set up everything from nothing and run the whole pipeline against the sandboxes (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077  # what Meltano and the plugins create (meltano.db, run files, stores) stays private
bash scripts/setup.sh
echo "Installing the Meltano plugins (first time: a minute or two)…"
.venv/bin/meltano install > /dev/null 2>&1 || .venv/bin/meltano install
exec .venv/bin/python scripts/demo.py "$@"
