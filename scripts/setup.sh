#!/usr/bin/env bash
# Create .venv (if needed) and install every package of the repository into it, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
packages=()
for dir in secret-store sandbox tap-exactonline target-mailchimp transform; do
  [ -f "$dir/pyproject.toml" ] && packages+=(-e "./$dir")
done
.venv/bin/python -m pip install -q "${packages[@]}" -r requirements-dev.txt
