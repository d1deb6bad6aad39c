"""List webhooks: creation (with Mailchimp's validation GET) and form-encoded deliveries."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


class Receiver:
    """A tiny local endpoint that records what Mailchimp sends it."""

    def __init__(self) -> None:
        self.gets = 0
        self.posts: list[dict[str, str]] = []
        self.answer = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                receiver.gets += 1
                self.send_response(receiver.answer)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = parse_qs(self.rfile.read(length).decode())
                receiver.posts.append({k: v[0] for k, v in form.items()})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/s3cret"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def wait_for(self, count: int) -> list[dict[str, str]]:
        deadline = time.monotonic() + 30  # generous: a busy machine delivers late, not never
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.posts


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver()
    yield instance
    instance.server.shutdown()
    instance.server.server_close()


@pytest.fixture
def hooks_url(mailchimp_sandbox: MailchimpSandbox) -> str:
    return f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/webhooks"


def test_create_validates_with_a_get(mailchimp_sandbox: MailchimpSandbox, receiver: Receiver,
                                     hooks_url: str) -> None:
    auth = ("u", mailchimp_sandbox.api_key)
    created = requests.post(hooks_url, auth=auth, timeout=15, json={
        "url": receiver.url, "events": {"unsubscribe": True, "cleaned": True},
        "sources": {"user": True, "admin": True}})
    assert created.status_code == 200
    assert receiver.gets == 1
    webhook = created.json()
    assert webhook["events"]["unsubscribe"] is True and webhook["events"]["subscribe"] is False
    assert webhook["sources"]["api"] is False
    listed = requests.get(hooks_url, auth=auth, timeout=5).json()
    assert [w["id"] for w in listed["webhooks"]] == [webhook["id"]]

    receiver.answer = 404
    refused = requests.post(hooks_url, auth=auth, json={"url": receiver.url + "x"}, timeout=15)
    assert refused.status_code == 400
    assert len(requests.get(hooks_url, auth=auth, timeout=5).json()["webhooks"]) == 1
    bad = requests.post(hooks_url, auth=auth, json={"url": "ftp://x"}, timeout=5)
    assert bad.status_code == 400

    assert requests.delete(f"{hooks_url}/{webhook['id']}", auth=auth,
                           timeout=5).status_code == 204
    assert requests.get(f"{hooks_url}/{webhook['id']}", auth=auth, timeout=5).status_code == 404


def test_deliveries_follow_events_and_sources(mailchimp_sandbox: MailchimpSandbox,
                                              receiver: Receiver, hooks_url: str) -> None:
    auth = ("u", mailchimp_sandbox.api_key)
    requests.post(hooks_url, auth=auth, timeout=15, json={
        "url": receiver.url, "events": {"unsubscribe": True, "cleaned": True, "profile": True},
        "sources": {"user": True, "admin": True, "api": False}})
    members = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/members"
    requests.put(f"{members}/{md5('ann@acme.nl')}", auth=auth, timeout=5, json={
        "email_address": "ann@acme.nl", "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Ann"}})
    requests.put(f"{members}/{md5('ann@acme.nl')}", auth=auth, timeout=5,
                 json={"merge_fields": {"FNAME": "Anna"}})  # api profile change: not wanted
    mailchimp_sandbox.set_member_status("ann@acme.nl", "unsubscribed")  # source user

    posts = receiver.wait_for(1)
    assert len(posts) == 1
    assert posts[0]["type"] == "unsubscribe"
    assert posts[0]["data[email]"] == "ann@acme.nl"
    assert posts[0]["data[list_id]"] == mailchimp_sandbox.list_id
    assert posts[0]["data[merges][FNAME]"] == "Anna"
    assert posts[0]["data[reason]"] == "manual"
    deadline = time.monotonic() + 30  # the log entry is written once the POST returns
    while not mailchimp_sandbox.webhook_deliveries() and time.monotonic() < deadline:
        time.sleep(0.01)
    deliveries = mailchimp_sandbox.webhook_deliveries()
    assert [(d["type"], d["status"]) for d in deliveries] == [("unsubscribe", 200)]
    assert "s3cret" not in str(deliveries)
