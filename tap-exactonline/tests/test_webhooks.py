"""Webhook receiver: signed deliveries from the sandbox are noted, forged ones are refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import pytest
import requests
from tap_exactonline.webhook_seen import SeenDeliveries
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
    inbox = WebhookInbox(tmp_path / "inbox.jsonl")
    server = WebhookServer("127.0.0.1", 0, SECRET, inbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}/exact", inbox
    server.close()


def test_signed_deliveries_are_recorded_and_a_run_clears_them(
    exact_sandbox_factory, config_for, run_tap, receiver
):
    url, inbox = receiver
    sandbox = exact_sandbox_factory(accounts_per_division=5, webhook_secret=SECRET)
    config = config_for(sandbox, divisions=[101], webhook_inbox_path=str(inbox.path))
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
    inbox = WebhookInbox(tmp_path / "inbox.jsonl")
    for division, topic in ((101, "Accounts"), (102, "Accounts"), (101, "Contacts")):
        inbox.add({"Topic": topic, "Division": division, "Action": "Update", "Key": "k"})
    config = config_for(exact_sandbox, divisions=[101], webhook_inbox_path=str(inbox.path))

    run_tap(config, select=["accounts"])

    assert sorted((p["Division"], p["Topic"]) for p in inbox.pending()) == [
        (101, "Contacts"), (102, "Accounts")]


def test_cli_reads_env_settings_as_meltano_passes_them(tmp_path, monkeypatch, capsys):
    inbox = WebhookInbox(tmp_path / "inbox.jsonl")
    inbox.add({"Topic": "Accounts", "Division": 101, "Action": "Update", "Key": "k1"})
    monkeypatch.setenv("TAP_EXACTONLINE_WEBHOOK_INBOX_PATH", str(inbox.path))

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


def test_a_line_torn_by_a_kill_neither_breaks_the_inbox_nor_swallows_the_next_entry(tmp_path):
    inbox = WebhookInbox(tmp_path / "inbox.jsonl")
    inbox.add({"Topic": "Accounts", "Division": 101, "Key": "k1", "HashCode": "1"})
    with inbox.path.open("a") as handle:
        handle.write('{"Topic": "Accounts", "Divi')  # killed mid-append
    assert inbox.add({"Topic": "Accounts", "Division": 101, "Key": "k2", "HashCode": "2"})
    assert [p["Key"] for p in inbox.pending()] == ["k1", "k2"]
    assert inbox.clear_before(time.time() + 1, lambda entry: entry["Key"] == "k1") == 1
    assert [p["Key"] for p in inbox.pending()] == ["k2"]


def test_the_memory_of_recorded_deliveries_is_bounded_and_keeps_the_newest(tmp_path):
    seen = SeenDeliveries(tmp_path / "seen", limit=5)
    keys = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(40)]
    for key in keys:
        seen.add(key)
    assert len(seen.path.read_text().splitlines()) <= 2 * 5
    reopened = SeenDeliveries(tmp_path / "seen", limit=5)  # as after a restart
    assert all(key in reopened for key in keys[-5:])
    assert not any(key in reopened for key in keys[:-5])


def test_two_receivers_on_one_inbox_share_what_was_recorded(tmp_path):
    first, second = (WebhookInbox(tmp_path / "inbox.jsonl") for _ in range(2))
    delivery = {"Topic": "Accounts", "Division": 101, "Key": "k", "EventCreatedOn": "t"}
    assert first.add({**delivery, "Key": "other"})  # first now holds a cached view
    assert second.add(dict(delivery))
    assert first.add(dict(delivery)) is False  # its cache saw the file change
    assert [p["Key"] for p in first.pending()] == ["other", "k"]


def test_a_delivery_that_cannot_be_recorded_gets_503_and_the_receiver_goes_on(
    receiver, monkeypatch
):
    from filelock import FileLock

    url, inbox = receiver
    monkeypatch.setattr("tap_exactonline.webhooks.ADD_LOCK_TIMEOUT", 0.2)
    content = b'{"Topic":"Accounts","Division":101,"Key":"k"}'
    digest = hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest().upper().encode()
    delivery = b'{"Content":' + content + b',"HashCode":"' + digest + b'"}'
    with FileLock(str(inbox.path) + ".lock"):  # e.g. a stuck process holding the inbox
        assert requests.post(url, data=delivery, timeout=5).status_code == 503
    assert requests.post(url, data=delivery, timeout=5).status_code == 200  # not acknowledged
    assert [p["Key"] for p in inbox.pending()] == ["k"]                      # before: retried
