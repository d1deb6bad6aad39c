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

The callback defaults to the `webhook_callback_url` setting; divisions to the tap's own.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock

from tap_exactonline.subscriptions import ALL_TOPICS, SubscriptionError, Subscriptions
from tap_exactonline.webhook_seen import SeenDeliveries, durable_append, durable_replace

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
ADD_LOCK_TIMEOUT = 10.0  # seconds a delivery waits for the inbox lock
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


class WebhookInbox:
    """Keys to poll, one JSON line each, shared by the receiver and the tap (file-locked).

    Every append is fsync'd before the receiver answers 200; deliveries already recorded are
    remembered (bounded) beside the inbox so a re-sent one is a no-op, even after a run cleared
    the inbox or the receiver restarted.
    """

    def __init__(self, path: str | Path, seen_limit: int = 20_000) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._seen = SeenDeliveries(str(self.path) + ".seen", seen_limit)

    def add(self, content: dict[str, Any]) -> bool:
        """Record a delivery; False (and nothing written) when it was recorded before."""
        entry = {name: content.get(name) for name in (
            "Topic", "Division", "Action", "Key", "EventCreatedOn")}
        entry["received_at"] = time.time()
        key = delivery_key(content)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Bounded wait: a stuck lock holder must not pin every worker thread (filelock's
        # Timeout is an OSError: the receiver answers 503 and keeps serving).
        with self._lock.acquire(timeout=ADD_LOCK_TIMEOUT):
            if key in self._seen:
                return False
            durable_append(self.path, self._line_start() + json.dumps(entry) + "\n")
            # Inbox first: a kill between the two writes means one harmless extra poll,
            # never a delivery marked seen but not recorded.
            self._seen.add(key)
        return True

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._read()

    def clear_before(self, moment: float, polled: Callable[[dict[str, Any]], bool]) -> int:
        """Forget entries received before `moment` that a finished run `polled`."""
        with self._lock:
            entries = self._read()
            keep = [e for e in entries if e.get("received_at", 0) >= moment or not polled(e)]
            durable_replace(self.path, "".join(json.dumps(e) + "\n" for e in keep))
        return len(entries) - len(keep)

    def _line_start(self) -> str:
        """A newline first when a kill left the last line torn, so the new entry stays whole."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(-1, 2)
                return "" if handle.read(1) == b"\n" else "\n"
        except (FileNotFoundError, OSError):
            return ""  # missing or empty

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line) if line.strip() else None
            except ValueError:
                entry = None
                LOGGER.warning("Skipped a torn line in the webhook inbox %s", self.path)
            if isinstance(entry, dict):
                entries.append(entry)
        return entries


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
        callback = args.callback or config.get("webhook_callback_url")
        topics = list(ALL_TOPICS) if args.all_topics else [args.topic] if args.topic else []
        if not callback or not topics:
            print("subscribe needs a callback (--callback or webhook_callback_url) and "
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
    inbox = WebhookInbox(config.get("webhook_inbox_path") or "webhook-inbox.jsonl")
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
