"""Reading the state and catalog files Meltano hands the tap, even while another run rewrites
them.

Why: Meltano keeps one set of run files per plugin (`.meltano/run/<plugin>/`) and rewrites them
at every start; for a plugin installed editable it also runs discovery into the catalog file
(truncated first, then filled when `--discover` prints). A second run of the job starting then
(a scheduler overlap, `meltano run --force`) can leave the first run's tap an empty or
half-written file for a second or two. What comes back is the same content, so waiting for a
whole file is right; the second run itself is then refused by the run lock.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import IO, Any

SETTLE_SECONDS = 15.0
POLL_SECONDS = 0.1


def read_settled_json(path: Path, settle_seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """The JSON object at `path` once it parses whole; the last error after `settle_seconds`
    of trying (a file that is really broken still fails, just later)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(document, dict):
                return document
            error: Exception = ValueError(f"{path} holds no JSON object")
        except (OSError, ValueError) as exc:
            error = exc
        if time.monotonic() >= deadline:
            raise error
        time.sleep(POLL_SECONDS)


def settled(handle: IO[str] | None) -> IO[str] | None:
    """`handle` (a file click opened) re-read whole from its path; other streams as they are."""
    name = getattr(handle, "name", None)
    if handle is None or not isinstance(name, str) or not Path(name).is_file():
        return handle
    return io.StringIO(json.dumps(read_settled_json(Path(name))))
