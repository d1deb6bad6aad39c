"""Reading the config, state and catalog files Meltano hands a plugin, even while they are
being rewritten.

Why: Meltano keeps one set of run files per plugin (`.meltano/run/<plugin>/`) and rewrites them
(truncated, then filled) at every start; for a plugin installed editable it also runs discovery
into the catalog file. A second run of the job starting then (a scheduler overlap, `meltano run
--force`) can leave the first run's plugin an empty or half-written file for a moment, and with
two companies' jobs started side by side a target has read its config cut off at 100 bytes
(CI under load). What comes back is the same content, so waiting for a whole file is right; a
second run of the same job is then refused by the run lock.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

SETTLE_SECONDS = 15.0
POLL_SECONDS = 0.1
_T = TypeVar("_T")


def read_settled(read: Callable[[], _T], settle_seconds: float = SETTLE_SECONDS) -> _T:
    """What `read` returns once it no longer fails to read or parse (OSError, ValueError); its
    last error after `settle_seconds` of trying (a file that is really broken still fails, just
    later)."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            return read()
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(POLL_SECONDS)


def read_settled_json(path: Path, settle_seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """The JSON object at `path` once it parses whole (see `read_settled`)."""

    def read() -> dict[str, Any]:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ValueError(f"{path} holds no JSON object")
        return document

    return read_settled(read, settle_seconds)


class SettledConfig:
    """Mixed into a singer-sdk plugin class (before the SDK's base): its `--config` files are
    read once they parse whole."""

    @classmethod
    def cb_config(cls, ctx: Any, param: Any, value: tuple[str, ...]) -> Any:
        parent = super().cb_config  # type: ignore[misc]  # the SDK's, next in the MRO
        return read_settled(lambda: parent(ctx, param, value))


def settled(handle: IO[str] | None) -> IO[str] | None:
    """`handle` (a file click opened) re-read whole from its path; other streams as they are."""
    name = getattr(handle, "name", None)
    if handle is None or not isinstance(name, str) or not Path(name).is_file():
        return handle
    return io.StringIO(json.dumps(read_settled_json(Path(name))))
