"""`target-mailchimp-admin`: store the credential encrypted; replay failed writes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from target_mailchimp.audit import FAILED, OK
from target_mailchimp.auth import SECRET_NAME, CredentialsError
from target_mailchimp.client import ApiError, MailchimpError
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
    audit, client = context.audit, context.client
    succeeded = failed = not_replayable = 0
    try:
        for row in audit.failed_unreplayed():
            label = f"{row['stream']} {row['record_key']} ({row['operation']})"
            if not row["method"] or not row["path"]:
                not_replayable += 1
                if args.verbose:
                    print(f"not replayable (bad input, fix at the source): {label}: "
                          f"{row['reason']}")
                continue
            body = json.loads(row["payload"]) if row["payload"] else None
            try:
                answer = client.request(row["method"], row["path"], body=body)
            except ApiError as exc:
                if exc.status == 404 and row["method"] == "DELETE":
                    audit.mark_replayed(row["id"], OK, "already gone")
                    succeeded += 1
                    continue
                audit.mark_replayed(row["id"], FAILED, exc.summary())
                failed += 1
                print(f"still failing: {label}: {exc.summary()}")
                continue
            audit.mark_replayed(row["id"], OK, "replayed")
            if row["stream"] == "members" and isinstance(answer, dict):
                # Our own write: its last_changed must not later look like an edit in Mailchimp.
                audit.remember_member_changes(
                    context.list_id, {row["record_key"]: answer.get("last_changed")})
            succeeded += 1
            print(f"replayed: {label}")
    except (MailchimpError, CredentialsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        context.close()
    print(f"Replay: {succeeded} succeeded, {failed} still failing, "
          f"{not_replayable} not replayable.")
    return 0 if failed == 0 else 1


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
