"""Reading the catalog file Meltano hands the tap, even while another run rewrites it.

Why: Meltano keeps one catalog file per plugin (`.meltano/run/<plugin>/tap.properties.json`)
and, for a plugin installed editable, runs discovery into it at every start: it truncates the
file, then waits for `--discover` to print. A second run of the job starting then (a scheduler
overlap, `meltano run --force`) leaves the first run's tap an empty or half-written file for a
second or two. The content that comes back is the same catalog, so waiting for a whole file
is right; the second run itself is then refused by the run lock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

SETTLE_SECONDS = 15.0
POLL_SECONDS = 0.1


def read_settled_catalog(path: Path, settle_seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """The catalog at `path` once it parses as a whole JSON object; the last error after
    `settle_seconds` of trying (a catalog that is really broken still fails, just later)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            catalog = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(catalog, dict) and isinstance(catalog.get("streams"), list):
                return catalog
            error: Exception = ValueError(f"{path} holds no Singer catalog (no `streams` list)")
        except (OSError, ValueError) as exc:
            error = exc
        if time.monotonic() >= deadline:
            raise error
        time.sleep(POLL_SECONDS)
