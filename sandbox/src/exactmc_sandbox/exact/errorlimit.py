"""Exact's error limit: too many 400/401/403/404 answers on one endpoint within an hour block
the app on that endpoint for the rest of the hour.

Off unless `error_limit` is set (other plugins' tests provoke errors on purpose). Choices
(unconfirmed): the block is answered with 429 and a `Retry-After` header; the window is a
sliding hour (configurable for tests); injected faults do not count.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

COUNTED_STATUSES = {400, 401, 403, 404}


class ErrorLimiter:
    def __init__(self, limit: int | None, window_seconds: float = 3600) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        self._errors: dict[str, deque[float]] = defaultdict(deque)
        self._blocked_until: dict[str, float] = {}

    def blocked_for(self, endpoint: str) -> float | None:
        """Seconds left in `endpoint`'s block, or None when calls may go through."""
        if self.limit is None:
            return None
        with self._lock:
            until = self._blocked_until.get(endpoint)
            left = until - time.time() if until else 0
            return left if left > 0 else None

    def record(self, endpoint: str, status: int) -> None:
        if self.limit is None or status not in COUNTED_STATUSES:
            return
        now = time.time()
        with self._lock:
            errors = self._errors[endpoint]
            errors.append(now)
            while errors and errors[0] <= now - self.window_seconds:
                errors.popleft()
            if len(errors) >= self.limit:
                self._blocked_until[endpoint] = now + self.window_seconds
                errors.clear()
