"""Run a check from several threads at once, as the sandboxes' servers do (one thread per
request beside the batch runner), collecting what failed: a mismatch the check reports, or an
exception (e.g. a zstd codec used by two threads at once), which a thread would otherwise
only log."""

from __future__ import annotations

import threading
from collections.abc import Callable


def failures_in_threads(check: Callable[[int], list[str]], threads: int = 8) -> list[str]:
    """`check(n)` in `threads` threads at once; every failure any of them found."""
    failures: list[str] = []

    def run(n: int) -> None:
        try:
            failures.extend(check(n))
        except Exception as exc:  # any exception is the failure reported
            failures.append(repr(exc))

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return failures
