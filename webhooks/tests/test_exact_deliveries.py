"""Exact deliveries through the service: verified, stored durably, one debounced run per burst."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from exactmc_sandbox.exact.webhooks import signed_body
from secret_store import generate_key
from tap_exactonline.webhooks import subscribe

SECRET = "exact-webhook-secret-for-service-tests"  # what make_service stores for Exact


def delivery(key: str, secret: str = SECRET) -> bytes:
    return signed_body({"Topic": "Accounts", "ClientId": "c", "Division": 101,
                        "Action": "Update", "Key": key, "ExactOnlineEndpoint": "https://x",
                        "EventCreatedOn": "2026-11-27T10:00:00"}, secret)


def post_all(url: str, bodies: list[bytes]) -> list[int]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda b: requests.post(url, data=b, timeout=10).status_code,
                             bodies))


def test_sandbox_deliveries_are_stored_and_start_one_run(exact_sandbox_factory, make_service,
                                                        tmp_path):
    # The sandbox sends the 3 deliveries from its own thread: a debounce of 2 s (the default)
    # keeps them one burst on a busy machine, where 0.5 s gaps happen.
    running = make_service(debounce_seconds=2)
    sandbox = exact_sandbox_factory(accounts_per_division=5, webhook_secret=SECRET)
    tap_config = {"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
                  "refresh_token": sandbox.issue_refresh_token("nl"),
                  "base_url": sandbox.base_url("nl"), "token_store_path": str(tmp_path / "t"),
                  "token_store_key": generate_key()}
    subscribe(tap_config, 101, "Accounts", running.exact_url)  # the handshake passes
    for account in sandbox.rows("Accounts", 101)[:3]:
        sandbox.update("Accounts", account["ID"], {"Name": "Changed " + account["ID"][:8]})
    assert sandbox.webhooks.wait_idle(10)

    assert {d["status"] for d in sandbox.webhook_deliveries() if d["kind"] == "delivery"} == {200}
    assert len(running.exact_inbox()) == 3
    assert running.wait_for(lambda: running.exact_log() == ["start", "end"])
    time.sleep(1.5)  # well past the debounce: still that one run
    assert running.exact_log() == ["start", "end"]
    assert running.mailchimp_log() == []  # Exact changes do not start the way back


def test_a_burst_of_100_deliveries_is_one_run_and_repeats_are_no_ops(make_service):
    running = make_service(debounce_seconds=2)  # the default: ample on a loaded machine
    bodies = [delivery(f"key-{n}") for n in range(100)]

    assert set(post_all(running.exact_url, bodies)) == {200}
    assert running.wait_for(lambda: running.exact_log() == ["start", "end"])
    assert len(running.exact_inbox()) == 100

    assert set(post_all(running.exact_url, bodies)) == {200}  # Exact re-sends them all
    time.sleep(3)  # past the debounce: a run would have started
    assert len(running.exact_inbox()) == 100
    assert running.exact_log() == ["start", "end"]


def test_deliveries_during_a_run_make_exactly_one_follow_up_run(make_service, tmp_path):
    gate = tmp_path / "end-the-run"  # the run lasts until the deliveries are in, however slow
    running = make_service(exact_gate=gate)
    assert requests.post(running.exact_url, data=delivery("first"), timeout=5).ok
    assert running.wait_for(lambda: running.exact_log() == ["start"])  # the run is going

    assert set(post_all(running.exact_url, [delivery(f"during-{n}") for n in range(10)])) == {200}
    time.sleep(1.0)  # past the debounce: a second run at once would have started by now
    assert running.exact_log() == ["start"]  # never two at once
    gate.touch()
    assert running.wait_for(lambda: running.exact_log() == ["start", "end", "start", "end"], 20)
    time.sleep(1.5)
    assert running.exact_log() == ["start", "end", "start", "end"]


def test_a_failed_run_is_retried_after_the_backoff(make_service):
    running = make_service(exact_fail_first=1, retry_backoff_seconds=1)
    assert requests.post(running.exact_url, data=delivery("k"), timeout=5).ok
    assert running.wait_for(lambda: running.exact_log().count("end") == 2, 20)
    time.sleep(2.5)  # the retry succeeded: no third run
    assert running.exact_log().count("start") == 2


def test_forged_deliveries_are_refused_and_start_nothing(make_service):
    running = make_service()
    assert requests.post(running.exact_url, data=delivery("k", "not-the-secret"),
                         timeout=5).status_code == 401
    assert requests.post(running.exact_url, data=b"{not json", timeout=5).status_code == 400
    assert requests.post(running.exact_url, data=b"", timeout=5).status_code == 200  # handshake
    time.sleep(1.5)
    assert running.exact_inbox() == []
    assert running.exact_log() == []


def test_an_oversized_body_is_refused_unread(make_service):
    running = make_service(webhook_max_body_bytes=1000)
    answer = requests.post(running.exact_url, data=b"x" * 5000, timeout=5)
    assert answer.status_code == 413
    threading.Event().wait(0.1)
    assert running.exact_inbox() == []


def test_deliveries_left_pending_before_a_restart_start_one_run(make_service, tmp_path):
    from tap_exactonline.webhooks import WebhookInbox

    WebhookInbox(tmp_path / "inbox.sqlite").add(
        {"Topic": "Accounts", "Division": 101, "Key": "k", "HashCode": "1"})
    running = make_service()
    assert running.wait_for(lambda: running.exact_log() == ["start", "end"])
