"""`exactmc-sandbox exact|mailchimp --port N`: run one simulator in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import sys

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt options


def _tune_malloc() -> None:
    """glibc's malloc, tuned for a long-running server holding many small records (issue 9;
    a first sync at 30k accounts: Mailchimp sandbox peak RSS 336 -> 145 MB with the data
    changes). Two arenas instead of 8 per core: the server answers each request on a thread of
    its own, and per-thread arenas each kept their own free memory. A fixed 256 KB mmap
    threshold: by default it rises after each large block is freed, so the next /batches body
    (~11 MB) lands in the heap, between long-lived records, and its memory is never returned.
    The same as MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=262144; elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)
        libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)


def _tune_gc() -> None:
    """The collector's young pass every 50,000 allocations instead of 700, as the plugins do
    (issue 9): a server holding 100k accounts' records allocates ~10 container objects per
    record it answers or stores, and each pass also walks what survived the last ones."""
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exactmc-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="service", required=True)
    from exactmc_sandbox.exact.cli import add_arguments as add_exact
    from exactmc_sandbox.mailchimp.cli import add_arguments as add_mailchimp

    add_exact(sub.add_parser("exact", help="the Exact Online simulator"))
    add_mailchimp(sub.add_parser("mailchimp", help="the Mailchimp simulator"))
    args = parser.parse_args(argv)
    _tune_malloc()
    _tune_gc()
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
