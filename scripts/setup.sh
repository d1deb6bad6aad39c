#!/usr/bin/env bash
# Create .venv (if needed) and install every package of the repository into it, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# PostgreSQL: the tests start a real server (a fleet's database); Debian's package, as root.
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing PostgreSQL (Debian package) for the tests..." >&2
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } >/dev/null ||
      echo "Could not install PostgreSQL: its tests will fail (EXACTMC_SKIP_POSTGRES=1 skips them)." >&2
  else
    echo "PostgreSQL is not installed (apt-get install postgresql): its tests will fail." >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
packages=()
for dir in secret-store sandbox tap-exactonline target-mailchimp transform webhooks target-exactonline tap-mailchimp fleet; do
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
