"""`exactmc-webhooks serve | mailchimp-url | about`.

    exactmc-webhooks serve --config ENV --host 0.0.0.0 --port 8780
    exactmc-webhooks mailchimp-url --config ENV --base https://hooks.example.com
"""

from __future__ import annotations

import argparse
import logging
import sys

from secret_store import SecretStoreError
from secret_store.database import DatabaseError, current_tenant

from exactmc_webhooks.callback_secrets import mailchimp_secret
from exactmc_webhooks.settings import about, load_config


def mailchimp_url(base: str, secret: str) -> str:
    """The callback URL to register: a fleet tenant's (`EXACTMC_TENANT`, as `exactmc-tenants`
    invokes commands) is `<base>/mailchimp/<tenant>/<secret>`, served by the fleet's service."""
    tenant = current_tenant()
    return f"{base.rstrip('/')}/mailchimp/{tenant + '/' if tenant else ''}{secret}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="exactmc-webhooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="receive Exact and Mailchimp webhooks")
    url = commands.add_parser("mailchimp-url",
                              help="print the Mailchimp callback URL (secret made once, stored)")
    commands.add_parser("about", help="list the settings")
    for sub in (serve, url):
        sub.add_argument("--config", default="ENV",
                         help="a JSON config file, or ENV for WEBHOOKS_* variables (Meltano)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8780)
    url.add_argument("--base", required=True, help="public https root that reaches `serve`")
    args = parser.parse_args(argv)
    if args.command == "about":
        print(about())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
        if args.command == "mailchimp-url":
            secret = mailchimp_secret(config, create=True)  # the tenant's, when one is set
            print(mailchimp_url(args.base, secret))
            return 0
        from exactmc_webhooks.service import NothingToServe, WebhookService
        from exactmc_webhooks.tenants import FleetUnavailable

        service = WebhookService(config, args.host, args.port)
    except (ValueError, SecretStoreError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FleetUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except NothingToServe as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{service.describe()} ({service.url})", flush=True)
    try:
        service.serve_forever()  # waitress ends quietly on Ctrl-C
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
