"""Webhook subscriptions and signed deliveries, as Exact sends them.

Choices (unconfirmed in the real API):
- Validation is synchronous: the subscribing POST waits `validation_delay` seconds, sends the
  empty POST to the callback and answers 201 only if that got a 2xx (else 400).
- Actions are spelled "Create", "Update", "Delete"; topics are the entity names (Accounts,
  Contacts, SalesInvoices, Items, Costcenters).
- A failed delivery is not retried (polling stays the safety net); every attempt is logged.
- A payment (control API `Receivables/<key>/pay`) is announced as an `Update` of the invoice it
  settles (topic SalesInvoices, Key = InvoiceID): the real topic for payments is unconfirmed.

Faults (construction, CLI `--webhook-drop-rate/--webhook-delay`, `POST /_sandbox/webhooks/faults`):
`drop_rate` loses that fraction of deliveries (seeded, logged as "dropped"), `delay` holds each
delivery that many seconds after the change (deliveries keep their order; the log's `held`
says how long each one was held).
- Plain http callbacks are accepted (the real service demands https).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from flask import Response, request

from exactmc_sandbox.exact.dates import SandboxClock, to_iso
from exactmc_sandbox.exact.odata import ODataError, render
from exactmc_sandbox.exact.responses import answer
from exactmc_sandbox.exact.store import DataStore

TOPICS = {"Accounts": "crm/Accounts", "Contacts": "crm/Contacts",
          "SalesInvoices": "salesinvoice/SalesInvoices", "Items": "logistics/Items",
          "Costcenters": "hrm/Costcenters"}
SUBSCRIPTION_FIELDS = ("ID", "CallbackURL", "Topic", "Division", "ClientID", "Created")


def signed_body(content: dict[str, Any], secret: str) -> bytes:
    """`{"Content":...,"HashCode":"..."}` with the HMAC over the exact Content bytes."""
    raw = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest().upper()
    return b'{"Content":' + raw + b',"HashCode":"' + digest.encode() + b'"}'


def _post(url: str, body: bytes, timeout: float) -> int:
    """POST and return the status (0 when the callback could not be reached)."""
    # Only http(s) callbacks get this far (checked when subscribing).
    req = urllib.request.Request(url, data=body, method="POST",  # noqa: S310
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:  # noqa: S310
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return 0


class WebhookHub:
    def __init__(self, store: DataStore, client_id: str, secret: str, clock: SandboxClock,
                 validation_delay: float = 1.0, timeout: float = 5.0, *,
                 drop_rate: float = 0.0, delay: float = 0.0, seed: int = 42) -> None:
        self.store = store
        self.client_id = client_id
        self._secret = secret
        self.clock = clock
        self.validation_delay = validation_delay
        self.timeout = timeout
        self.base_url: Callable[[str], str] = lambda region: f"/{region}"
        self._lock = threading.Lock()
        self._subscriptions: dict[str, dict[str, Any]] = {}
        self._deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.drop_rate, self.delay = 0.0, 0.0
        self._random = random.Random(seed)
        self.set_faults(drop_rate=drop_rate, delay=delay, seed=seed)
        self._pending = 0  # queued changes not yet delivered
        self._settled = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._deliver_loop, daemon=True)
        self._thread.start()
        store.add_listener(self._on_change)

    # -- API: /api/v1/{division}/webhooks/WebhookSubscriptions ----------------------------------
    def handle(self, division: int, path: str, key: str | None) -> Response:
        if request.method == "GET" and key is None:
            with self._lock:
                rows = [self._render(s) for s in self._subscriptions.values()
                        if s["Division"] == division]
            return answer({"d": {"results": rows}})
        if request.method == "POST" and key is None:
            return self._subscribe(division, request.get_json(silent=True))
        if request.method == "DELETE" and key is not None:
            with self._lock:
                found = self._subscriptions.get(key.lower())
                if found is None or found["Division"] != division:
                    raise ODataError(404, f"Entity not found: {key}")
                del self._subscriptions[key.lower()]
            return Response(status=204)
        raise ODataError(405, f"Method {request.method} not allowed on WebhookSubscriptions")

    def _subscribe(self, division: int, body: Any) -> Response:
        if not isinstance(body, dict):
            raise ODataError(400, "The request body must be a JSON object")
        topic, callback = body.get("Topic"), body.get("CallbackURL")
        if topic not in TOPICS:
            raise ODataError(400, f"Topic must be one of {sorted(TOPICS)}")
        if not isinstance(callback, str) or urlparse(callback).scheme not in {"http", "https"}:
            raise ODataError(400, "CallbackURL must be an http(s) URL")
        time.sleep(self.validation_delay)
        status = _post(callback, b"", self.timeout)
        self._log({"kind": "validation", "url": callback, "status": status})
        if not 200 <= status < 300:
            raise ODataError(400, f"Callback URL validation failed (status {status})")
        subscription = {"ID": str(uuid.uuid4()), "CallbackURL": callback, "Topic": topic,
                        "Division": division, "ClientID": self.client_id,
                        "Created": self.clock.now()}
        with self._lock:
            self._subscriptions[subscription["ID"]] = subscription
        return answer({"d": self._render(subscription)}, 201)

    @staticmethod
    def _render(subscription: dict[str, Any]) -> dict[str, Any]:
        return render(subscription, SUBSCRIPTION_FIELDS)

    # -- faults -------------------------------------------------------------------------------
    def set_faults(self, *, drop_rate: float | None = None, delay: float | None = None,
                   seed: int | None = None) -> dict[str, float]:
        """Change the drop rate (0..1) and delay (seconds); a seed restarts the drop sequence."""
        if drop_rate is not None and not (isinstance(drop_rate, int | float)
                                          and 0 <= drop_rate <= 1):
            raise ValueError("drop_rate must be a number from 0 to 1")
        if delay is not None and not (isinstance(delay, int | float) and 0 <= delay <= 3600):
            raise ValueError("delay must be a number of seconds from 0 to 3600")
        with self._lock:
            if drop_rate is not None:
                self.drop_rate = float(drop_rate)
            if delay is not None:
                self.delay = float(delay)
            if seed is not None:
                self._random = random.Random(seed)
            return self.faults()

    def faults(self) -> dict[str, float]:
        return {"drop_rate": self.drop_rate, "delay": self.delay}

    def _dropped(self) -> bool:
        with self._lock:
            return self.drop_rate > 0 and self._random.random() < self.drop_rate

    # -- deliveries ---------------------------------------------------------------------------
    def _on_change(self, event: dict[str, Any]) -> None:
        if event["entity"] in TOPICS:
            with self._lock:
                self._pending += 1
                held = self.delay
            self._queue.put({**event, "at": self.clock.now(), "held": held,
                             "due": time.monotonic() + held})

    def announce(self, entity: str, division: int, action: str, key: str) -> None:
        """A change the data store does not report itself (a payment): deliver it like one."""
        self._on_change({"entity": entity, "division": division, "action": action, "key": key})

    def _deliver_loop(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                time.sleep(max(0.0, event["due"] - time.monotonic()))  # FIFO: dues ascend
                self._deliver(event)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._settled.notify_all()

    def _deliver(self, event: dict[str, Any]) -> None:
        division = self.store.division(event["division"])
        with self._lock:
            targets = [s for s in self._subscriptions.values()
                       if s["Division"] == division.code and s["Topic"] == event["entity"]]
        endpoint = (f"{self.base_url(division.company.region)}/api/v1/{division.code}/"
                    f"{TOPICS[event['entity']]}(guid'{event['key']}')")
        content = {"Topic": event["entity"], "ClientId": self.client_id,
                   "Division": division.code, "Action": event["action"], "Key": event["key"],
                   "ExactOnlineEndpoint": endpoint, "EventCreatedOn": to_iso(event["at"])}
        body = signed_body(content, self._secret)
        for subscription in targets:
            if self._dropped():  # lost on the way: the receiver never hears of it
                self._log({"kind": "dropped", "url": subscription["CallbackURL"],
                           "status": None, "held": event["held"], "content": content})
                continue
            status = _post(subscription["CallbackURL"], body, self.timeout)
            self._log({"kind": "delivery", "url": subscription["CallbackURL"],
                       "status": status, "held": event["held"], "content": content})

    def _log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._deliveries.append({**entry, "sent_at": time.time()})

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._deliveries)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued change has been delivered (for tests and the demo)."""
        with self._lock:
            return self._settled.wait_for(lambda: self._pending == 0, timeout)

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**s, "Created": to_iso(s["Created"])} for s in self._subscriptions.values()]

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5)
