"""`target-mailchimp-admin`: store the credential encrypted; replay failed writes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from target_mailchimp.audit import FAILED, OK, SKIPPED
from target_mailchimp.auth import SECRET_NAME, CredentialsError
from target_mailchimp.client import MailchimpError
from target_mailchimp.replay import Replayer
from target_mailchimp.run_context import RunContext


def load_config(path: str) -> dict[str, Any]:
    """A JSON file, or `ENV` for TARGET_MAILCHIMP_* variables (how Meltano runs commands)."""
    if path == "ENV":
        from target_mailchimp.target import TargetMailchimp

        target = TargetMailchimp(parse_env_config=True, validate_config=False,
                                 setup_mapper=False)
        return dict(target.config)
    return json.loads(Path(path).read_text())


def set_credential(args: argparse.Namespace) -> int:
    from secret_store import SecretStore, SecretStoreError

    config = load_config(args.config) if args.config else {}
    key = os.environ.get("SECRET_STORE_KEY") or config.get("secret_store_key")
    directory = args.dir or config.get("secret_store_path")
    if not key or not directory:
        print("Need the store directory (--dir or secret_store_path in --config) and key "
              "(SECRET_STORE_KEY or secret_store_key in --config).", file=sys.stderr)
        return 2
    value = sys.stdin.readline().strip()
    if not value:
        print("No credential on standard input.", file=sys.stderr)
        return 2
    try:
        store = SecretStore(directory, key)
        with store.locked(SECRET_NAME):
            # One credential at a time: an old one of the other kind would be ambiguous.
            store.write(SECRET_NAME, {args.field: value})
    except SecretStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Stored the Mailchimp {args.field} in {directory}.")
    return 0


def replay(args: argparse.Namespace) -> int:
    """Re-send failed writes that carry a request (all are idempotent PUT/POST/PATCH/DELETE)."""
    context = RunContext(load_config(args.config))
    replayer = Replayer(context)
    counts = {OK: 0, FAILED: 0, SKIPPED: 0}
    not_replayable = 0
    try:
        for row in context.audit.failed_unreplayed():
            label = f"{row['stream']} {row['record_key']} ({row['operation']})"
            if not row["method"] or not row["path"]:
                not_replayable += 1
                if args.verbose:
                    print(f"not replayable (bad input, fix at the source): {label}: "
                          f"{row['reason']}")
                continue
            outcome, message = replayer.replay(row)
            counts[outcome] += 1
            prefix = {OK: "replayed", FAILED: "still failing", SKIPPED: "skipped"}[outcome]
            print(f"{prefix}: {label}" + ("" if outcome == OK else f": {message}"))
    except (MailchimpError, CredentialsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        context.close()
    print(f"Replay: {counts[OK]} succeeded, {counts[FAILED]} still failing, "
          f"{counts[SKIPPED]} skipped, {not_replayable} not replayable.")
    return 0 if counts[FAILED] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="target-mailchimp-admin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cred = sub.add_parser("set-credential",
                          help="store the API key (or OAuth token) read from stdin")
    cred.add_argument("--field", choices=["api_key", "oauth_token"], default="api_key")
    cred.add_argument("--dir", help="secret store directory")
    cred.add_argument("--config", help="target config (JSON file or ENV) naming "
                                       "secret_store_path/secret_store_key")
    rep = sub.add_parser("replay", help="re-send failed writes from the audit trail")
    rep.add_argument("--config", required=True,
                     help="the target's config: a JSON file, or ENV (TARGET_MAILCHIMP_*)")
    rep.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "set-credential":
        return set_credential(args)
    return replay(args)


if __name__ == "__main__":
    raise SystemExit(main())
