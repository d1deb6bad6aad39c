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
from target_mailchimp.heal import Healer, HealPolicy
from target_mailchimp.refusals import RETRIABLE, classify, last_error
from target_mailchimp.replay import Attempt
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
    # --dir, else secret_store_path, else EXACTMC_DATABASE_URL, else the project's `.secrets`.
    location = args.dir or config.get("secret_store_path")
    if not key:
        print("Need the store's key (SECRET_STORE_KEY or secret_store_key in --config).",
              file=sys.stderr)
        return 2
    value = sys.stdin.readline().strip()
    if not value:
        print("No credential on standard input.", file=sys.stderr)
        return 2
    try:
        store = SecretStore(location, key)
        with store.locked(SECRET_NAME):
            # One credential at a time: an old one of the other kind would be ambiguous.
            store.write(SECRET_NAME, {args.field: value})
    except SecretStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Stored the Mailchimp {args.field} in {store.label}.")
    return 0


def replay(args: argparse.Namespace) -> int:
    """Re-send failed writes now, whatever their backoff and attempts spent (all idempotent).

    Permanent refusals are only re-sent with --include-permanent (e.g. after fixing the cause
    in Mailchimp); bad input never is: it must be fixed at the source.
    """
    context = RunContext(load_config(args.config))
    counts = {OK: 0, FAILED: 0, SKIPPED: 0}

    def show(row: dict[str, Any], attempt: Attempt) -> None:
        counts[attempt.outcome] += 1
        label = f"{row['stream']} {row['record_key']} ({row['operation']})"
        prefix = {OK: "replayed", FAILED: "still failing", SKIPPED: "skipped"}[attempt.outcome]
        print(f"{prefix}: {label}" + ("" if attempt.outcome == OK else f": {attempt.message}"))

    try:
        policy = HealPolicy.from_config(context.config)
        report = Healer(context, policy, manual=True, include_permanent=args.include_permanent,
                        on_result=show).run()
        if args.verbose:
            for row in context.audit.failed_unreplayed():
                if classify(row) != RETRIABLE:
                    print(f"not re-sent ({classify(row)}): {row['stream']} {row['record_key']} "
                          f"({row['operation']}): {last_error(row)}")
    except (MailchimpError, CredentialsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        context.close()
    if report.interrupted:
        print(f"error: {report.interrupted}", file=sys.stderr)
    permanent = sum(report.permanent.values())
    not_replayable = sum(report.bad_input.values())
    print(f"Replay: {counts[OK]} succeeded, {counts[FAILED]} still failing, "
          f"{counts[SKIPPED]} skipped, {not_replayable} not replayable, "
          f"{permanent} permanent refusal{'' if permanent == 1 else 's'} not re-sent"
          f"{'' if args.include_permanent else ' (--include-permanent to try)'}.")
    return 0 if counts[FAILED] == 0 and not report.interrupted else 1


def check(args: argparse.Namespace) -> int:
    from target_mailchimp.check import MailchimpCheck

    report = MailchimpCheck(load_config(args.config)).run()
    print(report.render(args.format))
    return report.exit_code


def status(args: argparse.Namespace) -> int:
    from target_mailchimp.status import StatusReport, render_text

    report = StatusReport(load_config(args.config)).build()
    print(json.dumps(report, indent=2) if args.format == "json" else render_text(report))
    return 0 if report["status"] == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="target-mailchimp-admin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cred = sub.add_parser("set-credential",
                          help="store the API key (or OAuth token) read from stdin")
    cred.add_argument("--field", choices=["api_key", "oauth_token"], default="api_key")
    cred.add_argument("--dir", help="the secret store: a directory or a database URL")
    cred.add_argument("--config", help="target config (JSON file or ENV) naming "
                                       "secret_store_path/secret_store_key")
    rep = sub.add_parser("replay", help="re-send failed writes from the audit trail")
    rep.add_argument("--config", required=True,
                     help="the target's config: a JSON file, or ENV (TARGET_MAILCHIMP_*)")
    rep.add_argument("--include-permanent", action="store_true",
                     help="also re-send permanent refusals (after fixing their cause)")
    rep.add_argument("--verbose", action="store_true",
                     help="also list the failed writes that are not re-sent, and why")
    chk = sub.add_parser("check", help="check credentials, audience, store, merge fields, tags "
                                       "(read-only; exit 0 ok, 1 warnings, 2 errors)")
    chk.add_argument("--config", required=True, help="the target's config: JSON file, or ENV")
    chk.add_argument("--format", choices=("text", "json"), default="text")
    sta = sub.add_parser("status", help="last runs, failing writes, rejected records, Exact "
                                        "budget and token age (read-only; exit 0 ok, 1 attention)")
    sta.add_argument("--config", required=True, help="the target's config: JSON file, or ENV")
    sta.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    if args.command == "status":
        return status(args)
    if args.command == "set-credential":
        return set_credential(args)
    if args.command == "check":
        return check(args)
    return replay(args)


if __name__ == "__main__":
    raise SystemExit(main())
