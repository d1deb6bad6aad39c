"""What an operation costs, for the scale tests of both sandboxes.

Cost tests compare the same operation on a small and on a large data set (best of a few runs,
CPU time); a scan of everything shows up as a large ratio, an indexed one stays near 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

MAX_RATIO = 3  # indexed: ~1 even on a busy machine (best of 5); a scan: 7-27 here


def cost(operation: Callable[[], Any], repeat: int = 5) -> float:
    """Best CPU seconds of `repeat` runs (never 0, so that ratios stay defined)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        operation()
        best = min(best, time.process_time() - start)
    return max(best, 1e-5)
