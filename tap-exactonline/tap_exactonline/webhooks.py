"""Exact webhooks: a receiver that verifies each delivery and notes the keys to poll.

A delivery only names a changed key; the sync feeds fetch the row anyway, and Exact's retry
policy is unconfirmed, so polling stays the safety net. The inbox tells a scheduler that a run
is worth starting now, and shows which keys changed; a completed tap run clears what it covered.

    tap-exactonline-webhooks serve --config config.json --port 8765
    tap-exactonline-webhooks subscribe --config config.json --topic Accounts --callback URL
    tap-exactonline-webhooks subscribe --config config.json --all-topics   # every division
    tap-exactonline-webhooks list --config config.json [--division 101]
    tap-exactonline-webhooks remove --config config.json [--id ID] [--callback URL] [--topic T]
    tap-exactonline-webhooks pending --config config.json

The inbox is the Exact table of the webhook inbox database (`secret_store.webhook_inbox`):
`webhook_inbox_url`, else `EXACTMC_DATABASE_URL`, else the file
`$MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite`.
The callback defaults to the `webhook_callback_url` setting, else `webhook_base_url` + `/exact`
(+ `/<tenant>` for a fleet tenant: the fleet's one service); divisions to the tap's own.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from secret_store.database import current_tenant
from secret_store.webhook_inbox import SEEN_LIMIT, InboxDatabase, inbox_url

from tap_exactonline.subscriptions import ALL_TOPICS, SubscriptionError, Subscriptions

LOGGER = logging.getLogger("tap_exactonline.webhooks")

_CONTENT_START = b'{"Content":'
_HASH_MARK = b',"HashCode":"'


# The stream that polls each topic's changes (other topics have none: nothing to wait for).
TOPIC_STREAMS = {"Accounts": "accounts", "Contacts": "contacts", "SalesInvoices": "sales_invoices"}


class InvalidDelivery(Exception):
    """Not a delivery signed with our webhook secret: it is refused, nothing is recorded."""

    status = 401


class MalformedDelivery(InvalidDelivery):
    """Not shaped like an Exact delivery at all (bad JSON, missing fields, no HashCode)."""

    status = 400


_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
REQUIRED_FIELDS = ("Topic", "Division", "Key")  # what the tap needs to know what to poll


def verify_delivery(raw: bytes, secret: str) -> dict[str, Any]:
    """The delivery's `Content`, once its HashCode is proven (HMAC-SHA256, upper-case hex).

    Exact signs the raw bytes between `{"Content":` and `,"HashCode":`, so those bytes are
    hashed as received, never re-serialised.
    """
    if not raw.startswith(_CONTENT_START) or _HASH_MARK not in raw:
        raise MalformedDelivery("not an Exact webhook delivery")
    try:
        whole = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # deep nesting is an attack, not a crash
        raise MalformedDelivery("body is not JSON") from exc
    if not isinstance(whole, dict) or set(whole) != {"Content", "HashCode"}:
        raise MalformedDelivery("body is not {Content, HashCode}")
    received = whole["HashCode"]
    if not isinstance(received, str) or not _HEX64.fullmatch(received):
        raise MalformedDelivery("HashCode is not 64 hex digits")
    content = raw[len(_CONTENT_START):raw.rindex(_HASH_MARK)]  # the signed bytes, as sent
    expected = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest().upper()
    if not hmac.compare_digest(received.upper(), expected):
        raise InvalidDelivery("HashCode does not match")
    try:
        parsed = json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise MalformedDelivery("Content is not JSON") from exc
    if not isinstance(parsed, dict):
        raise MalformedDelivery("Content is not an object")
    missing = [name for name in REQUIRED_FIELDS if parsed.get(name) in (None, "")]
    if missing:
        raise MalformedDelivery(f"Content lacks {', '.join(missing)}")
    parsed["HashCode"] = received.upper()
    return parsed


def delivery_key(content: dict[str, Any]) -> str:
    """The idempotency key: the event itself when Exact stamps it, else the signature.

    (Topic, Division, Key, Action, EventCreatedOn) names one event however it is serialised;
    without EventCreatedOn, two real updates of one key would look alike, so the HashCode
    (which covers every byte) decides.
    """
    if content.get("EventCreatedOn"):
        event = [str(content.get(name)) for name in (
            "Topic", "Division", "Key", "Action", "EventCreatedOn")]
        basis = json.dumps(event)
    elif content.get("HashCode"):
        basis = str(content["HashCode"])
    else:  # not from the receiver: only an identical entry is a repeat
        basis = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(basis.encode()).hexdigest()


def inbox_setting(config: dict[str, Any]) -> str | None:
    """The tap's inbox setting: `webhook_inbox_url`, else the deprecated `webhook_inbox_path`
    (a SQLite file now); None: `EXACTMC_DATABASE_URL` or the default file apply."""
    return config.get("webhook_inbox_url") or config.get("webhook_inbox_path") or None


class WebhookInbox:
    """Keys to poll, shared by the receiver and the tap: the Exact table of the inbox database.

    `location` is a URL or a SQLite file (None: `EXACTMC_DATABASE_URL`, else
    `$MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite`). Each delivery is committed (synced) before
    the receiver answers 200; recorded deliveries are remembered (bounded) by a unique key, so
    a re-sent one is a no-op, even after a run cleared the inbox or the receiver restarted.
    """

    def __init__(self, location: str | Path | None = None, seen_limit: int = SEEN_LIMIT) -> None:
        self.url = inbox_url(str(location) if location else None)
        self._db = InboxDatabase(self.url, seen_limit)
        self.path = Path(location) if location and "://" not in str(location) else None

    def __repr__(self) -> str:
        return repr(self._db)

    def add(self, content: dict[str, Any]) -> bool:
        """Record a delivery; False (and nothing written) when it was recorded before."""
        entry = {name: content.get(name) for name in (
            "Topic", "Division", "Action", "Key", "EventCreatedOn")}
        return self._db.add_exact(entry, delivery_key(content))

    def pending(self) -> list[dict[str, Any]]:
        """The entries not yet covered by a run, oldest first, with `received_at`."""
        return self._db.exact_entries()

    def now(self) -> float:
        """The clock `received_at` is written in (the database's): a run's start."""
        return self._db.now()

    def clear_before(self, moment: float, polled: Callable[[dict[str, Any]], bool]) -> int:
        """Forget entries received before `moment` (`now()`) that a finished run `polled`."""
        return self._db.clear_exact(moment, polled)


def subscribe(config: dict, division: int, topic: str, callback: str) -> dict[str, Any]:
    """POST webhooks/WebhookSubscriptions with the tap's own (stored) tokens."""
    from tap_exactonline.tap import TapExactOnline  # the tap's settings and authenticator

    tap = TapExactOnline(config=config, setup_mapper=False)
    response = requests.post(
        f"{tap.base_url}/api/v1/{division}/webhooks/WebhookSubscriptions",
        json={"CallbackURL": callback, "Topic": topic}, auth=tap.authenticator,
        headers={"Accept": "application/json"}, timeout=60,
    )
    if not response.ok:
        raise RuntimeError(f"Subscription refused ({response.status_code}): {response.text[:300]}")
    return response.json().get("d", {})


def default_callback(config: dict[str, Any]) -> str | None:
    """`webhook_callback_url`, else `<webhook_base_url>/exact`, or `.../exact/<tenant>` when
    EXACTMC_TENANT is set (`exactmc-tenants` invokes commands so): the route of the fleet's
    webhook service that checks, records and runs that tenant's deliveries."""
    if config.get("webhook_callback_url"):
        return str(config["webhook_callback_url"])
    base = str(config.get("webhook_base_url") or "").rstrip("/")
    if not base:
        return None
    tenant = current_tenant()
    return f"{base}/exact/{tenant}" if tenant else f"{base}/exact"


def manage_subscriptions(args: argparse.Namespace, config: dict[str, Any]) -> int:
    """`subscribe`, `list` and `remove`: one line per subscription on stdout."""
    manager = Subscriptions(config)
    try:
        divisions = manager.divisions(args.division)
        if args.command == "list":
            for row in manager.listing(divisions):
                print(_subscription_line(row))
            return 0
        if args.command == "remove":
            for row in manager.remove(divisions, subscription_id=args.subscription_id,
                                      callback=args.callback, topic=args.topic):
                print("Removed:", _subscription_line(row))
            return 0
        callback = args.callback or default_callback(config)
        topics = list(ALL_TOPICS) if args.all_topics else [args.topic] if args.topic else []
        if not callback or not topics:
            print("subscribe needs a callback (--callback, webhook_callback_url or "
                  "webhook_base_url) and "
                  "--topic or --all-topics.", file=sys.stderr)
            return 1
        for row, created in manager.subscribe(divisions, topics, callback):
            print("Subscribed:" if created else "Kept:", _subscription_line(row))
    except (SubscriptionError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _subscription_line(row: dict[str, Any]) -> str:
    return f"{row.get('Division')}\t{row.get('Topic')}\t{row.get('CallbackURL')}\t{row.get('ID')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tap-exactonline-webhooks")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "subscribe", "list", "remove", "pending"):
        sub = commands.add_parser(name)
        sub.add_argument("--config", required=True,
                         help="the tap's config JSON, or ENV for TAP_EXACTONLINE_* variables")
        if name == "serve":
            sub.add_argument("--host", default="127.0.0.1")
            sub.add_argument("--port", type=int, default=8765)
        if name in ("subscribe", "list", "remove"):
            sub.add_argument("--division", type=int, default=None,
                             help="one division (default: every division the tap reads)")
        if name in ("subscribe", "remove"):
            sub.add_argument("--topic", default=None)
            sub.add_argument("--callback", default=None,
                             help="callback URL (subscribe: default webhook_callback_url)")
        if name == "subscribe":
            sub.add_argument("--all-topics", action="store_true",
                             help=f"subscribe {', '.join(ALL_TOPICS)} (existing ones are kept)")
        if name == "remove":
            sub.add_argument("--id", dest="subscription_id", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    # Imported here: authorize imports the tap, which imports this module.
    from tap_exactonline.authorize import AuthorizeError, load_config

    try:
        # Meltano's `webhooks` command passes `--config ENV`, like `authorize`.
        config = load_config([args.config], required=())
    except AuthorizeError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command in ("subscribe", "list", "remove"):
        return manage_subscriptions(args, config)
    inbox = WebhookInbox(inbox_setting(config))
    if args.command == "pending":
        print(json.dumps(inbox.pending(), indent=1))
        return 0
    secret = config.get("webhook_secret")
    if not secret:
        print("webhook_secret is not set.", file=sys.stderr)
        return 1
    from tap_exactonline.webhook_server import ReceiverLimits, WebhookServer

    try:
        limits = ReceiverLimits.from_config(config)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    server = WebhookServer(args.host, args.port, secret, inbox, limits)
    print(f"Receiving Exact webhooks on http://{server.host}:{server.port}/", flush=True)
    server.serve_forever()  # waitress ends quietly on Ctrl-C
    return 0


if __name__ == "__main__":
    sys.exit(main())
