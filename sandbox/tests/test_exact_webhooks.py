"""Webhook subscriptions and signed deliveries of the Exact simulator, to a real receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

SECRET = "webhook-secret-for-tests"


class Receiver:
    """A callback endpoint that records raw bodies; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(self.rfile.read(length))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def sandbox(exact_sandbox_factory):
    return exact_sandbox_factory(webhook_secret=SECRET, webhook_validation_delay=0)


def _api(sandbox):
    tokens = requests.post(f"{sandbox.base_url()}/api/oauth2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token(),
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}).json()
    headers = {"Accept": "application/json", "Authorization": f"Bearer {tokens['access_token']}"}
    return f"{sandbox.base_url()}/api/v1/101/webhooks/WebhookSubscriptions", headers


def _verify(raw: bytes) -> dict:
    """What a receiver must do: HMAC over the raw bytes between the markers."""
    start, end = raw.index(b'{"Content":') + len(b'{"Content":'), raw.rindex(b',"HashCode":')
    expected = hmac.new(SECRET.encode(), raw[start:end], hashlib.sha256).hexdigest().upper()
    body = json.loads(raw)
    assert hmac.compare_digest(body["HashCode"], expected)
    return body["Content"]


def test_subscribe_validate_deliver_signed_and_unsubscribe(sandbox, receiver):
    url, headers = _api(sandbox)
    created = requests.post(url, json={"CallbackURL": receiver.url, "Topic": "Accounts"},
                            headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    assert receiver.bodies == [b""]  # the empty validation POST
    listed = requests.get(url, headers=headers, timeout=10).json()["d"]["results"]
    assert [s["Topic"] for s in listed] == ["Accounts"]

    account = sandbox.rows("Accounts", 101)[0]
    sandbox.update("Accounts", account["ID"], {"Name": "Webhook B.V."})
    sandbox.update("Contacts", sandbox.rows("Contacts", 101)[0]["ID"], {"FirstName": "X"})
    sandbox.create("Accounts", {"Division": 102, "Name": "Other division"})
    sandbox.webhook_deliveries()
    assert len(receiver.bodies) == 2
    content = _verify(receiver.bodies[1])
    assert content["Topic"] == "Accounts" and content["Action"] == "Update"
    assert content["Key"] == account["ID"] and content["Division"] == 101
    assert content["ClientId"] == sandbox.client_id
    # The endpoint in the notification works as-is (and costs an API call).
    fetched = requests.get(content["ExactOnlineEndpoint"], headers=headers, timeout=10)
    assert fetched.json()["d"]["Name"] == "Webhook B.V."

    tampered = receiver.bodies[1].replace(b"Update", b"Delete")
    with pytest.raises(AssertionError):
        _verify(tampered)

    key = created.json()["d"]["ID"]
    assert requests.delete(f"{url}(guid'{key}')", headers=headers,
                           timeout=10).status_code == 204
    sandbox.update("Accounts", account["ID"], {"Name": "Quiet B.V."})
    sandbox.webhook_deliveries()
    assert len(receiver.bodies) == 2


def test_subscription_refused_when_validation_fails(sandbox):
    failing = Receiver(status=500)
    try:
        url, headers = _api(sandbox)
        refused = requests.post(url, json={"CallbackURL": failing.url, "Topic": "Contacts"},
                                headers=headers, timeout=10)
        assert refused.status_code == 400
        assert requests.get(url, headers=headers, timeout=10).json()["d"]["results"] == []
    finally:
        failing.close()
    bad_topic = requests.post(url, json={"CallbackURL": "http://127.0.0.1:9/x", "Topic": "Nope"},
                              headers=headers, timeout=10)
    assert bad_topic.status_code == 400
