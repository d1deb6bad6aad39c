"""`secret-store`: create a key, put a credential into the store without it touching a file."""

from __future__ import annotations

import argparse
import os
import sys

from secret_store.store import SecretStore, SecretStoreError, generate_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="secret-store", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate-key", help="print a new encryption key")
    put = sub.add_parser("set", help="store FIELD of document NAME, value read from stdin")
    put.add_argument("name")
    put.add_argument("field")
    put.add_argument("--dir", "--store", dest="dir",
                     help="the store: a directory or a database URL (default: "
                     "EXACTMC_DATABASE_URL, else $MELTANO_PROJECT_ROOT/.secrets)")
    args = parser.parse_args(argv)

    if args.command == "generate-key":
        print(generate_key())
        return 0
    key = os.environ.get("SECRET_STORE_KEY")
    if not key:
        print("Set SECRET_STORE_KEY to the store's encryption key.", file=sys.stderr)
        return 2
    value = sys.stdin.readline().strip()
    if not value:
        print("No value on standard input.", file=sys.stderr)
        return 2
    try:
        store = SecretStore(args.dir, key)
        store.update(args.name, **{args.field: value})
    except SecretStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Stored {args.field} in {args.name}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
