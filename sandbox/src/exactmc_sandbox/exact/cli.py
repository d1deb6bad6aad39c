"""`exactmc-sandbox exact`: run the Exact Online simulator in the foreground."""

from __future__ import annotations

import argparse
import os
import sys

from exactmc_sandbox.exact.sandbox import ExactSandbox

SECRET_ENV = "EXACT_SANDBOX_CLIENT_SECRET"  # noqa: S105 (a variable name, not a secret)
WEBHOOK_SECRET_ENV = "EXACT_SANDBOX_WEBHOOK_SECRET"  # noqa: S105 (kept off the command line)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--client-id", default="exact-sandbox-client")
    parser.add_argument("--client-secret", default=None,
                        help=f"OAuth client secret (or env {SECRET_ENV}); random when omitted")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--accounts-per-division", "--accounts", type=int, default=1000,
                        dest="accounts_per_division")
    parser.add_argument("--minutely-limit", type=int, default=60)
    parser.add_argument("--daily-limit", type=int, default=5000)
    parser.add_argument("--minute-seconds", type=float, default=60)
    parser.add_argument("--day-seconds", type=float, default=86400)
    parser.add_argument("--access-token-seconds", type=float, default=600)
    parser.add_argument("--refresh-too-early-seconds", type=float, default=570)
    parser.add_argument("--error-limit", type=int, default=None,
                        help="block an endpoint for an hour after this many 4xx (Exact: 10)")
    parser.add_argument("--webhook-secret", default=os.environ.get(WEBHOOK_SECRET_ENV),
                        help="enable webhooks, signing deliveries with this secret"
                             f" (or env {WEBHOOK_SECRET_ENV})")
    parser.add_argument("--webhook-drop-rate", type=float, default=0.0,
                        help="lose this fraction of webhook deliveries (0..1, seeded by --seed)")
    parser.add_argument("--webhook-delay", type=float, default=0.0,
                        help="seconds each webhook delivery is held after the change")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    sandbox = ExactSandbox(
        seed=args.seed, accounts_per_division=args.accounts_per_division,
        client_id=args.client_id,
        client_secret=args.client_secret or os.environ.get(SECRET_ENV),
        minutely_limit=args.minutely_limit, daily_limit=args.daily_limit,
        minute_seconds=args.minute_seconds, day_seconds=args.day_seconds,
        access_token_seconds=args.access_token_seconds,
        refresh_too_early_seconds=args.refresh_too_early_seconds,
        webhook_secret=args.webhook_secret, webhook_drop_rate=args.webhook_drop_rate,
        webhook_delay=args.webhook_delay, error_limit=args.error_limit, host=args.host,
    )
    root = f"http://{args.host}:{args.port}"
    secret_note = "as given" if (args.client_secret or os.environ.get(SECRET_ENV)) else \
        f"random (pass --client-secret or {SECRET_ENV} to choose one)"
    print(f"Exact Online sandbox on {root}", flush=True)
    print(f"  region nl: {root}/nl (divisions 101, 102, 103; current 101)")
    print(f"  region be: {root}/be (division 201)")
    print(f"  client_id: {args.client_id}; client secret: {secret_note}")
    print(f"  bootstrap: POST {root}/_sandbox/oauth/grant "
          f'{{"client_id": "{args.client_id}", "region": "nl"}}', flush=True)
    try:
        sandbox.serve_forever(args.port)
    except KeyboardInterrupt:
        sys.exit(0)
