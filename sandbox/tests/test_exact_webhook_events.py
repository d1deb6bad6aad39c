"""Every data change of the Exact simulator fires its topic, and deliveries can be dropped/delayed.

Changes are made over the control API (HTTP), deliveries go to a real receiver over HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

SECRET = "webhook-secret-for-tests"
TOPICS = ("Accounts", "Contacts", "SalesInvoices")


class Receiver:
    """A callback endpoint that records raw bodies and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _api(sandbox):
    tokens = requests.post(f"{sandbox.base_url()}/api/oauth2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token(),
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}).json()
    headers = {"Accept": "application/json", "Authorization": f"Bearer {tokens['access_token']}"}
    return f"{sandbox.base_url()}/api/v1/101/webhooks/WebhookSubscriptions", headers


def _verify(raw: bytes) -> dict:
    start, end = raw.index(b'{"Content":') + len(b'{"Content":'), raw.rindex(b',"HashCode":')
    expected = hmac.new(SECRET.encode(), raw[start:end], hashlib.sha256).hexdigest().upper()
    body = json.loads(raw)
    assert hmac.compare_digest(body["HashCode"], expected)
    return body["Content"]


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def _subscribe(sandbox, receiver, division=101, topics=TOPICS):
    url, headers = _api(sandbox)
    url = url.replace("/101/", f"/{division}/")
    for topic in topics:
        created = requests.post(url, json={"CallbackURL": receiver.url, "Topic": topic},
                                headers=headers, timeout=10)
        assert created.status_code == 201, created.text


def _control(sandbox, method, path, body=None):
    answer = requests.request(method, f"{sandbox.url}/_sandbox/{path}", json=body, timeout=10)
    assert answer.ok, answer.text
    return answer.json()


def _received(sandbox, receiver):
    sandbox.webhook_deliveries()  # waits until the queue is empty
    return [_verify(body) for body in receiver.bodies if body]


def test_every_data_change_fires_its_topic_with_key_and_division(exact_sandbox_factory,
                                                                 receiver):
    sandbox = exact_sandbox_factory(accounts_per_division=3, webhook_secret=SECRET,
                                    webhook_validation_delay=0)
    _subscribe(sandbox, receiver, division=102)
    assert receiver.bodies == [b"", b"", b""]  # one handshake (empty POST) per subscription

    d = 102
    account = _control(sandbox, "POST", "data/Accounts", {
        "Division": d, "Name": "Hook B.V.", "Status": "C", "City": "Delft"})
    _control(sandbox, "PATCH", f"data/Accounts/{account['ID']}", {"City": "Leiden"})
    contact = _control(sandbox, "POST", "data/Contacts", {
        "Division": d, "Account": account["ID"], "FirstName": "Ann", "LastName": "Hook",
        "Email": "ann@hook.nl"})
    _control(sandbox, "PATCH", f"data/Contacts/{contact['ID']}", {"LastName": "Haak"})
    line = sandbox.rows("SalesInvoices", d)[0]["SalesInvoiceLines"][0]
    invoice = _control(sandbox, "POST", "data/SalesInvoices", {
        "Division": d, "InvoiceTo": account["ID"], "Type": 8020, "Status": 50,
        "Currency": "EUR", "AmountFC": 10.0, "AmountDC": 10.0,
        "SalesInvoiceLines": [{"Item": line["Item"], "Quantity": 1, "UnitPrice": 10.0}]})
    _control(sandbox, "PATCH", f"data/SalesInvoices/{invoice['InvoiceID']}",
             {"Description": "changed"})
    receivable = next(r for r in sandbox.rows("Receivables", d)
                      if r["InvoiceNumber"] == invoice["InvoiceNumber"])
    _control(sandbox, "POST", f"data/Receivables/{receivable['ID']}/pay")
    _control(sandbox, "DELETE", f"data/Contacts/{contact['ID']}")
    _control(sandbox, "DELETE", f"data/Accounts/{account['ID']}")
    # Other divisions' changes go to their own subscribers only (none here).
    _control(sandbox, "PATCH", f"data/Accounts/{sandbox.rows('Accounts', 101)[0]['ID']}",
             {"City": "Elsewhere"})

    got = [(c["Topic"], c["Action"], c["Key"], c["Division"]) for c in
           _received(sandbox, receiver)]
    assert got == [
        ("Accounts", "Create", account["ID"], d),
        ("Accounts", "Update", account["ID"], d),
        ("Contacts", "Create", contact["ID"], d),
        ("Contacts", "Update", contact["ID"], d),
        ("SalesInvoices", "Create", invoice["InvoiceID"], d),
        ("SalesInvoices", "Update", invoice["InvoiceID"], d),
        ("SalesInvoices", "Update", invoice["InvoiceID"], d),  # the payment
        ("Contacts", "Delete", contact["ID"], d),
        ("Accounts", "Delete", account["ID"], d),
    ]


def _change_many(sandbox, count):
    accounts = sandbox.rows("Accounts", 101)
    for n in range(count):
        sandbox.update("Accounts", accounts[n % len(accounts)]["ID"], {"City": f"City {n}"})


def test_a_seeded_fraction_of_deliveries_is_dropped_and_logged(exact_sandbox_factory, receiver):
    sandbox = exact_sandbox_factory(accounts_per_division=5, webhook_secret=SECRET,
                                    webhook_validation_delay=0, webhook_drop_rate=0.2, seed=9)
    _subscribe(sandbox, receiver, topics=("Accounts",))
    _change_many(sandbox, 100)
    received = _received(sandbox, receiver)
    log = sandbox.webhook_deliveries()
    dropped = [e for e in log if e["kind"] == "dropped"]
    assert 8 <= len(dropped) <= 35  # ~20 of 100
    assert len(received) + len(dropped) == 100
    assert all(e["status"] == 200 for e in log if e["kind"] == "delivery")

    # The same seed drops the same deliveries: a benchmark's pass can be replayed.
    again_receiver = Receiver()
    try:
        again = exact_sandbox_factory(accounts_per_division=5, webhook_secret=SECRET,
                                      webhook_validation_delay=0, webhook_drop_rate=0.2, seed=9)
        _subscribe(again, again_receiver, topics=("Accounts",))
        _change_many(again, 100)
        again_dropped = [e for e in again.webhook_deliveries() if e["kind"] == "dropped"]
        assert [e["content"]["Key"] for e in again_dropped] == [
            e["content"]["Key"] for e in dropped]
        assert [json.loads(b)["Content"]["Key"] for b in again_receiver.bodies if b] == [
            c["Key"] for c in received]
    finally:
        again_receiver.close()


def test_faults_are_switched_at_run_time_over_the_control_api(exact_sandbox_factory, receiver):
    sandbox = exact_sandbox_factory(accounts_per_division=5, webhook_secret=SECRET,
                                    webhook_validation_delay=0)
    _subscribe(sandbox, receiver, topics=("Accounts",))
    assert _control(sandbox, "POST", "webhooks/faults", {"delay": 2.0}) == {
        "drop_rate": 0.0, "delay": 2.0}
    started = time.monotonic()
    _change_many(sandbox, 3)
    assert len(_received(sandbox, receiver)) == 3
    assert time.monotonic() - started >= 2.0  # held, not lost

    _control(sandbox, "POST", "webhooks/faults", {"drop_rate": 1.0, "delay": 0})
    _change_many(sandbox, 5)
    assert len(_received(sandbox, receiver)) == 3  # every one dropped

    _control(sandbox, "POST", "webhooks/faults", {"drop_rate": 0})
    _change_many(sandbox, 2)
    assert len(_received(sandbox, receiver)) == 5
    # How long each was held, as the sandbox logs it (a busy machine's clock says nothing).
    assert [(e["kind"], e["held"]) for e in sandbox.webhook_deliveries()
            if e["kind"] != "validation"] == (
        [("delivery", 2.0)] * 3 + [("dropped", 0.0)] * 5 + [("delivery", 0.0)] * 2)

    bad = requests.post(f"{sandbox.url}/_sandbox/webhooks/faults", json={"drop_rate": 2},
                        timeout=10)
    assert bad.status_code == 400


def test_cli_flags_set_the_faults(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "exactmc_sandbox.cli", "exact", "--port", str(port),
         "--accounts-per-division", "2", "--webhook-secret", SECRET,
         "--webhook-drop-rate", "0.5", "--webhook-delay", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/_sandbox/webhooks/faults"
    try:
        deadline = time.monotonic() + 60  # a busy machine starts a process slowly
        while True:
            try:
                answer = requests.post(url, json={}, timeout=5)  # no change: reads them
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert answer.json() == {"drop_rate": 0.5, "delay": 2.0}
    finally:
        process.terminate()
        process.wait(10)
