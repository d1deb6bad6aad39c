"""What the sandbox's own code allocated during an action and still holds after it.

The tests that start a sandbox server share the process with its web server: its threads and
per-connection buffers (8 kB each, more of them on a busy machine; CI once counted 26 kB) are
not what a test of the sandbox's data means. Only allocations made with a sandbox frame on the
stack count, so an answer or operation the sandbox keeps is counted wherever it was built.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import exactmc_sandbox

SANDBOX_CODE = str(Path(exactmc_sandbox.__file__).parent)
STACK_DEPTH = 40  # deep enough to reach the sandbox's frames under the server's and Flask's

T = TypeVar("T")


def held_by_sandbox(action: Callable[[], T]) -> tuple[T, int]:
    """Runs `action`; gives back its result and the bytes the sandbox's code still holds."""
    gc.collect()
    tracemalloc.start(STACK_DEPTH)
    try:
        result = action()
        gc.collect()
        held = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, f"{SANDBOX_CODE}/*", all_frames=True)])
    finally:
        tracemalloc.stop()
    return result, sum(stat.size for stat in held.statistics("filename"))
