"""What an operation costs, for the scale tests of both sandboxes.

Cost tests compare the same operation on a small and on a large data set. The cost is the
number of Python steps it runs (calls and lines, counted by a trace function), not CPU time:
a count is the same on a busy machine (a CPU-time ratio once failed CI there), and a scan of
everything still shows up, as every row it visits runs at least a line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

MAX_RATIO = 1.25  # indexed: 1 (the very same steps); a scan: 1.4 (a bare index walk) to 40


def cost(operation: Callable[[], Any]) -> int:
    """Python steps of one run of `operation`, after a first run that warms caches."""
    operation()
    steps = 0

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        steps += 1
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        operation()
    finally:
        sys.settrace(previous)
    return steps
