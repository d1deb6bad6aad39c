"""The 10-connections-per-key limit, the call counter and injected faults."""

from __future__ import annotations

import threading

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def concurrent_pings(sandbox: MailchimpSandbox, how_many: int, auth: tuple[str, str]) -> list[int]:
    """Fire `how_many` requests at once; returns their status codes."""
    barrier = threading.Barrier(how_many)
    statuses: list[int] = []
    lock = threading.Lock()

    def ping() -> None:
        session = requests.Session()
        barrier.wait()
        status = session.get(f"{sandbox.api_base}/ping", auth=auth, timeout=30).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=ping) for _ in range(how_many)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_eleventh_simultaneous_request_gets_429(mailchimp_sandbox_factory) -> None:
    sandbox = mailchimp_sandbox_factory(latency=0.5)
    statuses = concurrent_pings(sandbox, 11, ("u", sandbox.api_key))
    assert sorted(statuses) == [200] * 10 + [429]
    calls = sandbox.calls()
    assert calls["max_in_flight_seen_overall"] == 11
    assert list(calls["max_in_flight_seen"].values()) == [11]
    assert calls["by_endpoint"]["GET /ping"] == 11


def test_429_body_is_problem_json(mailchimp_sandbox_factory) -> None:
    sandbox = mailchimp_sandbox_factory(latency=0.4, max_in_flight=1)
    results: list[requests.Response] = []
    barrier = threading.Barrier(2)

    def ping() -> None:
        barrier.wait()
        results.append(requests.get(f"{sandbox.api_base}/ping", auth=("u", sandbox.api_key),
                                    timeout=30))

    threads = [threading.Thread(target=ping) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = next(r for r in results if r.status_code == 429)
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["detail"] == (
        "You have exceeded the limit of 10 simultaneous connections.")


def test_limit_is_per_credential(mailchimp_sandbox_factory) -> None:
    sandbox = mailchimp_sandbox_factory(latency=0.4, max_in_flight=2,
                                        api_keys=["a" * 32 + "-us6", "b" * 32 + "-us6"])
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def ping(key: str) -> None:
        barrier.wait()
        status = requests.get(f"{sandbox.api_base}/ping", auth=("u", key), timeout=30).status_code
        with lock:
            statuses.append(status)

    keys = ["a" * 32 + "-us6"] * 2 + ["b" * 32 + "-us6"] * 2
    threads = [threading.Thread(target=ping, args=(k,)) for k in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert sorted(sandbox.calls()["max_in_flight_seen"].values()) == [2, 2]


def test_sequential_client_never_exceeds_one(mailchimp_sandbox: MailchimpSandbox) -> None:
    for _ in range(5):
        requests.get(f"{mailchimp_sandbox.api_base}/ping", auth=("u", mailchimp_sandbox.api_key),
                     timeout=5)
    assert mailchimp_sandbox.calls()["max_in_flight_seen_overall"] == 1
    mailchimp_sandbox.reset_calls()
    calls = mailchimp_sandbox.calls()
    assert calls["total"] == 0 and calls["max_in_flight_seen_overall"] == 0


def test_labels_are_normalised(mailchimp_sandbox: MailchimpSandbox) -> None:
    session = requests.Session()
    session.auth = ("u", mailchimp_sandbox.api_key)
    base = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}"
    session.get(f"{base}/members/abc", timeout=5)
    session.get(f"{base}/members/def", timeout=5)
    session.get(f"{base}/members", timeout=5)
    requests.get(f"{mailchimp_sandbox.url}/_sandbox/calls", timeout=5)  # control: not counted
    assert mailchimp_sandbox.calls()["by_endpoint"] == {
        "GET /lists/*/members/*": 2, "GET /lists/*/members": 1}


def test_status_fault_then_recovery(mailchimp_sandbox: MailchimpSandbox) -> None:
    mailchimp_sandbox.add_fault(path=r"/members/", method="PUT", kind="status", status=503,
                                count=2)
    # The path accepts the address itself in place of its hash, as the real API does.
    url = (f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/members/"
           "someone@acme.nl")
    body = {"email_address": "someone@acme.nl", "status_if_new": "subscribed"}
    auth = ("u", mailchimp_sandbox.api_key)
    first = requests.put(url, json=body, auth=auth, timeout=5)
    second = requests.put(url, json=body, auth=auth, timeout=5)
    assert (first.status_code, second.status_code) == (503, 503)
    assert first.headers["Content-Type"].startswith("application/problem+json")
    assert mailchimp_sandbox.members() == []  # a faulted request changes nothing
    assert requests.put(url, json=body, auth=auth, timeout=5).status_code == 200
    assert mailchimp_sandbox.calls()["by_endpoint"]["PUT /lists/*/members/*"] == 3


def test_faults_over_http_drop_and_clear(mailchimp_sandbox: MailchimpSandbox) -> None:
    control = f"{mailchimp_sandbox.url}/_sandbox/faults"
    added = requests.post(control, json={"path": "/ping", "kind": "drop", "count": 1}, timeout=5)
    assert added.status_code == 201
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{mailchimp_sandbox.api_base}/ping", auth=("u", mailchimp_sandbox.api_key),
                     timeout=5)
    requests.post(control, json={"path": "/ping", "kind": "status", "status": 500,
                                 "count": 5}, timeout=5)
    assert len(requests.get(control, timeout=5).json()) == 1
    requests.delete(control, timeout=5)
    assert requests.get(f"{mailchimp_sandbox.api_base}/ping",
                        auth=("u", mailchimp_sandbox.api_key), timeout=5).status_code == 200
