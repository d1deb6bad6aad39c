"""`exactmc-sandbox exact|mailchimp --port N`: run one simulator in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import sys

M_ARENA_MAX = -8  # glibc's mallopt option


def _fewer_malloc_arenas(arenas: int = 2) -> None:
    """Two malloc arenas instead of glibc's 8 per core: the server answers each request on a
    thread of its own, and per-thread arenas left the Mailchimp sandbox's RSS ~40 % above its
    data after a first sync (issue 9; the same as MALLOC_ARENA_MAX=2). Elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exactmc-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="service", required=True)
    from exactmc_sandbox.exact.cli import add_arguments as add_exact
    from exactmc_sandbox.mailchimp.cli import add_arguments as add_mailchimp

    add_exact(sub.add_parser("exact", help="the Exact Online simulator"))
    add_mailchimp(sub.add_parser("mailchimp", help="the Mailchimp simulator"))
    args = parser.parse_args(argv)
    _fewer_malloc_arenas()
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
