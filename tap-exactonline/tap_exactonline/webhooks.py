"""Exact webhooks: a receiver that verifies each delivery and notes the keys to poll.

A delivery only names a changed key; the sync feeds fetch the row anyway, and Exact's retry
policy is unconfirmed, so polling stays the safety net. The inbox tells a scheduler that a run
is worth starting now, and shows which keys changed; a completed tap run clears what it covered.

    tap-exactonline-webhooks serve --config config.json --port 8765
    tap-exactonline-webhooks subscribe --config config.json --topic Accounts --callback URL
    tap-exactonline-webhooks pending --config config.json
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock

LOGGER = logging.getLogger("tap_exactonline.webhooks")

_CONTENT_START = b'{"Content":'
_HASH_MARK = b',"HashCode":"'


# The stream that polls each topic's changes (other topics have none: nothing to wait for).
TOPIC_STREAMS = {"Accounts": "accounts", "Contacts": "contacts", "SalesInvoices": "sales_invoices"}


class InvalidDelivery(Exception):
    """Not a delivery signed with our webhook secret: it is ignored, nothing is recorded."""


def verify_delivery(raw: bytes, secret: str) -> dict[str, Any]:
    """The delivery's `Content`, once its HashCode is proven (HMAC-SHA256, upper-case hex).

    Exact signs the raw bytes between `{"Content":` and `,"HashCode":`, so those bytes are
    hashed as received, never re-serialised.
    """
    if not raw.startswith(_CONTENT_START) or _HASH_MARK not in raw:
        raise InvalidDelivery("not an Exact webhook delivery")
    cut = raw.rindex(_HASH_MARK)
    content = raw[len(_CONTENT_START):cut]
    received = raw[cut + len(_HASH_MARK):].rstrip().removesuffix(b"}").rstrip().removesuffix(b'"')
    expected = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest().upper().encode()
    if not hmac.compare_digest(received, expected):
        raise InvalidDelivery("HashCode does not match")
    try:
        parsed = json.loads(content)
    except ValueError as exc:
        raise InvalidDelivery("Content is not JSON") from exc
    if not isinstance(parsed, dict) or "Key" not in parsed:
        raise InvalidDelivery("Content carries no Key")
    return parsed


class WebhookInbox:
    """Keys to poll, one JSON line each, shared by the receiver and the tap (file-locked)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")

    def add(self, content: dict[str, Any]) -> None:
        entry = {name: content.get(name) for name in (
            "Topic", "Division", "Action", "Key", "EventCreatedOn")}
        entry["received_at"] = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._read()

    def clear_before(self, moment: float, polled: Callable[[dict[str, Any]], bool]) -> int:
        """Forget entries received before `moment` that a finished run `polled`."""
        with self._lock:
            entries = self._read()
            keep = [e for e in entries if e.get("received_at", 0) >= moment or not polled(e)]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(e) + "\n" for e in keep), encoding="utf-8")
            tmp.replace(self.path)
        return len(entries) - len(keep)

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            self._answer(200)  # Exact's validation call when subscribing: an empty POST
            return
        try:
            content = verify_delivery(raw, self.server.secret)
        except InvalidDelivery as exc:
            LOGGER.warning("Rejected a webhook delivery: %s", exc)
            self._answer(401)
            return
        self.server.inbox.add(content)
        self._answer(200)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        LOGGER.debug(format, *args)


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], secret: str, inbox: WebhookInbox) -> None:
        super().__init__(address, _ReceiverHandler)
        self.secret = secret
        self.inbox = inbox


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tap-exactonline-webhooks")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "subscribe", "pending"):
        sub = commands.add_parser(name)
        sub.add_argument("--config", required=True,
                         help="the tap's config JSON, or ENV for TAP_EXACTONLINE_* variables")
        if name == "serve":
            sub.add_argument("--host", default="127.0.0.1")
            sub.add_argument("--port", type=int, default=8765)
        if name == "subscribe":
            sub.add_argument("--division", type=int, required=True)
            sub.add_argument("--topic", required=True)
            sub.add_argument("--callback", required=True)
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
    if args.command == "subscribe":
        created = subscribe(config, args.division, args.topic, args.callback)
        print(f"Subscribed: {created.get('Topic')} → {created.get('CallbackURL')}")
        return 0
    inbox = WebhookInbox(config.get("webhook_inbox_path") or "webhook-inbox.jsonl")
    if args.command == "pending":
        print(json.dumps(inbox.pending(), indent=1))
        return 0
    secret = config.get("webhook_secret")
    if not secret:
        print("webhook_secret is not set.", file=sys.stderr)
        return 1
    server = WebhookServer((args.host, args.port), secret, inbox)
    print(f"Receiving Exact webhooks on http://{args.host}:{server.server_address[1]}/")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
