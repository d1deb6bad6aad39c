#!/usr/bin/env bash
# Create .venv (if needed) and install every package of the repository into it, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
packages=()
for dir in secret-store sandbox tap-exactonline target-mailchimp transform webhooks target-exactonline tap-mailchimp; do
  packages+=(-e "./$dir")
done
# Quiet unless something fails: then the whole pip log is shown.
log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q "${packages[@]}" -r requirements-dev.txt; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
