"""Webhook receiver: signed deliveries from the sandbox are noted, forged ones are refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading

import pytest
import requests
from tap_exactonline.webhook_server import WebhookServer
from tap_exactonline.webhooks import (
    InvalidDelivery,
    WebhookInbox,
    main,
    subscribe,
    verify_delivery,
)

SECRET = "webhook-secret-for-tests"


@pytest.fixture
def receiver(tmp_path):
    inbox = WebhookInbox(tmp_path / "inbox.sqlite")
    server = WebhookServer("127.0.0.1", 0, SECRET, inbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}/exact", inbox
    server.close()


def test_signed_deliveries_are_recorded_and_a_run_clears_them(
    exact_sandbox_factory, config_for, run_tap, receiver
):
    url, inbox = receiver
    sandbox = exact_sandbox_factory(accounts_per_division=5, webhook_secret=SECRET)
    config = config_for(sandbox, divisions=[101], webhook_inbox_url=inbox.url)
    created = subscribe(config, 101, "Accounts", url)
    assert created["Topic"] == "Accounts"

    account = sandbox.rows("Accounts", 101)[0]
    sandbox.update("Accounts", account["ID"], {"Name": "Via webhook BV"})
    assert sandbox.webhooks.wait_idle(10)

    pending = inbox.pending()
    assert [(p["Key"], p["Division"], p["Topic"]) for p in pending] == [
        (account["ID"], 101, "Accounts")]

    run = run_tap(config, select=["accounts"])
    assert "Via webhook BV" in {r["Name"] for r in run.records("accounts")}
    assert inbox.pending() == []  # polled: the run covered it


def test_a_run_clears_only_the_divisions_and_topics_it_polled(exact_sandbox, config_for,
                                                              run_tap, tmp_path):
    inbox = WebhookInbox(tmp_path / "inbox.sqlite")
    for division, topic in ((101, "Accounts"), (102, "Accounts"), (101, "Contacts")):
        inbox.add({"Topic": topic, "Division": division, "Action": "Update", "Key": "k"})
    config = config_for(exact_sandbox, divisions=[101], webhook_inbox_url=inbox.url)

    run_tap(config, select=["accounts"])

    assert sorted((p["Division"], p["Topic"]) for p in inbox.pending()) == [
        (101, "Contacts"), (102, "Accounts")]


def test_cli_reads_env_settings_as_meltano_passes_them(tmp_path, monkeypatch, capsys):
    inbox = WebhookInbox(tmp_path / "inbox.sqlite")
    inbox.add({"Topic": "Accounts", "Division": 101, "Action": "Update", "Key": "k1"})
    monkeypatch.setenv("TAP_EXACTONLINE_WEBHOOK_INBOX_URL", inbox.url)

    assert main(["pending", "--config", "ENV"]) == 0  # meltano.yml: `--config ENV`

    assert [p["Key"] for p in json.loads(capsys.readouterr().out)] == ["k1"]


def test_forged_or_altered_deliveries_are_refused(receiver):
    url, inbox = receiver
    forged = b'{"Content":{"Topic":"Accounts","Key":"x"},"HashCode":"' + b"A" * 64 + b'"}'
    assert requests.post(url, data=forged, timeout=5).status_code == 401
    assert requests.post(url, data=b"", timeout=5).status_code == 200  # validation ping
    assert inbox.pending() == []


def test_hash_is_computed_over_the_raw_content_bytes():
    content = b'{"Topic":"Contacts", "Key":"k1","Division":101}'  # odd spacing kept as sent
    digest = hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest().upper().encode()
    raw = b'{"Content":' + content + b',"HashCode":"' + digest + b'"}'
    assert verify_delivery(raw, SECRET)["Key"] == "k1"
    with pytest.raises(InvalidDelivery):
        verify_delivery(raw.replace(b"k1", b"k2"), SECRET)
    with pytest.raises(InvalidDelivery):
        verify_delivery(raw, "another-secret")


KILLED_WRITER = """
import sys
from tap_exactonline.webhooks import WebhookInbox
inbox = WebhookInbox(sys.argv[1])
n = 0
while True:
    inbox.add({"Topic": "Accounts", "Division": 101, "Key": f"k{n}", "HashCode": str(n)})
    print(n, flush=True)  # recorded: what a 200 would promise
    n += 1
"""


def test_a_writer_killed_mid_delivery_neither_breaks_the_inbox_nor_loses_a_recorded_entry(
        tmp_path):
    import subprocess
    import sys

    inbox = WebhookInbox(tmp_path / "inbox.sqlite")
    inbox.add({"Topic": "Accounts", "Division": 101, "Key": "before", "HashCode": "b"})
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(inbox.path)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acknowledged = [writer.stdout.readline() for _ in range(30)]
    writer.kill()  # SIGKILL, most likely inside a transaction
    writer.wait(10)
    keys = [p["Key"] for p in inbox.pending()]
    assert keys[0] == "before" and {f"k{int(n)}" for n in acknowledged} <= set(keys)
    assert inbox.add({"Topic": "Accounts", "Division": 101, "Key": "after", "HashCode": "a"})
    assert inbox.clear_before(inbox.now() + 1, lambda entry: entry["Key"] != "after") == len(keys)
    assert [p["Key"] for p in inbox.pending()] == ["after"]


def test_two_receivers_on_one_inbox_share_what_was_recorded(tmp_path):
    first, second = (WebhookInbox(tmp_path / "inbox.sqlite") for _ in range(2))
    delivery = {"Topic": "Accounts", "Division": 101, "Key": "k", "EventCreatedOn": "t"}
    assert first.add({**delivery, "Key": "other"})  # first now holds a cached view
    assert second.add(dict(delivery))
    assert first.add(dict(delivery)) is False  # its cache saw the file change
    assert [p["Key"] for p in first.pending()] == ["other", "k"]


def test_a_delivery_that_cannot_be_recorded_gets_503_and_the_receiver_goes_on(
    receiver, monkeypatch
):
    import sqlite3

    url, inbox = receiver
    monkeypatch.setattr("secret_store.webhook_inbox.LOCK_WAIT_SECONDS", 0.2)
    content = b'{"Topic":"Accounts","Division":101,"Key":"k"}'
    digest = hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest().upper().encode()
    delivery = b'{"Content":' + content + b',"HashCode":"' + digest + b'"}'
    inbox.add({"Topic": "Contacts", "Division": 101, "Key": "earlier"})  # the file exists
    stuck = sqlite3.connect(inbox.path, isolation_level=None)
    stuck.execute("BEGIN IMMEDIATE")  # e.g. a stuck process holding the inbox's write lock
    try:
        assert requests.post(url, data=delivery, timeout=5).status_code == 503
    finally:
        stuck.execute("ROLLBACK")
        stuck.close()
    assert requests.post(url, data=delivery, timeout=5).status_code == 200  # not acknowledged
    assert [p["Key"] for p in inbox.pending()] == ["earlier", "k"]           # before: retried
