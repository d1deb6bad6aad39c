"""`exactmc-sandbox exact|mailchimp --port N`: run one simulator in the foreground."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exactmc-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="service", required=True)
    from exactmc_sandbox.exact.cli import add_arguments as add_exact
    from exactmc_sandbox.mailchimp.cli import add_arguments as add_mailchimp

    add_exact(sub.add_parser("exact", help="the Exact Online simulator"))
    add_mailchimp(sub.add_parser("mailchimp", help="the Mailchimp simulator"))
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
