"""`exactmc-sandbox mailchimp`: run the Mailchimp simulator in the foreground."""

from __future__ import annotations

import argparse
import os
import threading

from exactmc_sandbox.mailchimp.sandbox import MailchimpSandbox


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8702)
    parser.add_argument("--api-key", action="append", dest="api_keys",
                        help="accepted API key (<32 hex>-<dc>); repeatable; random if omitted")
    parser.add_argument("--api-key-file",
                        help="write the (first) API key to this file, mode 0600, for clients")
    parser.add_argument("--oauth-token", action="append", dest="oauth_tokens",
                        help="accepted OAuth token; repeatable")
    parser.add_argument("--list-id", help="id of the seeded 'Exact Customers' audience")
    parser.add_argument("--dc", default="us6", help="data center reported for OAuth tokens")
    parser.add_argument("--max-in-flight", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every API request")
    parser.add_argument("--batch-start-delay", type=float, default=0.2)
    parser.add_argument("--batch-operation-delay", type=float, default=0.0)
    parser.set_defaults(run=run)


def write_secret_file(path: str, secret: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")


def run(args: argparse.Namespace) -> None:
    sandbox = MailchimpSandbox(
        api_keys=args.api_keys, oauth_tokens=args.oauth_tokens, list_id=args.list_id,
        dc=args.dc, max_in_flight=args.max_in_flight, latency=args.latency,
        batch_start_delay=args.batch_start_delay,
        batch_operation_delay=args.batch_operation_delay,
    )
    if args.api_key_file:
        write_secret_file(args.api_key_file, sandbox.api_key)
    url = sandbox.start(port=args.port, host=args.host)  # port 0 picks a free one
    # The key is a secret: print where to find it, never the key itself.
    print(f"Mailchimp sandbox at {url} (API base {url}/3.0)", flush=True)
    print(f"list id: {sandbox.list_id}", flush=True)
    if not args.api_keys:
        print("API key: random (use --api-key or --api-key-file to know it)", flush=True)
    try:
        threading.Event().wait()  # serve until killed
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
