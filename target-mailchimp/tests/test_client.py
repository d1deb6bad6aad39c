"""Narrow client cases with requests-mock: error shapes, retries, no credentials in errors."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import requests
from target_mailchimp.auth import ApiKeyAuth
from target_mailchimp.client import ApiError, MailchimpClient, OutageError, subscriber_hash
from target_mailchimp.operations import Write, WriteExecutor

BASE = "https://us6.api.mailchimp.com/3.0"
KEY = "abcdef0123456789-us6"


def client(**options):
    return MailchimpClient(BASE, ApiKeyAuth(KEY), backoff_factor=0.001, **options)


def test_problem_json_without_type_becomes_a_record_error(requests_mock):
    requests_mock.put(f"{BASE}/lists/L/members/h", status_code=400, json={
        "title": "Invalid Resource", "status": 400, "detail": "Your merge fields were invalid.",
        "errors": [{"field": "FNAME", "message": "too long"}]})
    with pytest.raises(ApiError) as caught:
        client().request("PUT", "lists/L/members/h", body={"a": 1})
    assert caught.value.status == 400
    assert caught.value.summary() == ("400 Invalid Resource: Your merge fields were invalid. "
                                      "[FNAME: too long]")


def test_429_5xx_and_timeouts_are_retried_then_succeed(requests_mock):
    requests_mock.get(f"{BASE}/ping", [
        {"status_code": 429, "json": {"title": "Too Many Requests"}},
        {"exc": requests.exceptions.ConnectTimeout},
        {"status_code": 502, "text": "bad gateway"},
        {"status_code": 200, "json": {"health_status": "Everything's Chimpy!"}},
    ])
    assert client().get("ping") == {"health_status": "Everything's Chimpy!"}
    assert requests_mock.call_count == 4
    assert requests_mock.last_request.headers["Authorization"].startswith("Basic ")


def test_retries_exhausted_is_an_outage_without_secrets(requests_mock):
    requests_mock.get(f"{BASE}/ping", exc=requests.exceptions.ConnectionError(
        f"failed https://user:{KEY}@host"))
    with pytest.raises(OutageError) as caught:
        client(max_tries=2).get("ping")
    assert KEY not in str(caught.value) and "ConnectionError" in str(caught.value)


def test_max_in_flight_is_capped_at_ten():
    assert client(max_in_flight=50).max_in_flight == 10


def test_batch_results_are_fetched_without_credentials_from_other_hosts(requests_mock):
    requests_mock.get("https://storage.example/result.tar.gz", content=b"x")
    assert client().download("https://storage.example/result.tar.gz", bytes) == b"x"
    assert "Authorization" not in requests_mock.last_request.headers


def test_subscriber_hash_is_md5_of_lowercased_email():
    assert subscriber_hash(" Urist.McVankab@Freddiesjokes.com ") == (
        "62eeb292278cc15f5817cb78f7790b08")


def _archive(results) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = json.dumps(results).encode()
        info = tarfile.TarInfo("results/0.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _batch_answer(requests_mock, results):
    requests_mock.post(f"{BASE}/batches", json={"id": "b1", "status": "pending"})
    requests_mock.get(f"{BASE}/batches/b1", json={
        "id": "b1", "status": "finished", "response_body_url": f"{BASE}/results.tar.gz"})
    requests_mock.get(f"{BASE}/results.tar.gz", content=_archive(results))


def _puts(count):
    return [Write("products", f"P{i}", "upsert", "PUT", f"ecommerce/stores/s/products/P{i}",
                  {"id": f"P{i}"}) for i in range(count)]


def test_batch_operations_answered_429_5xx_or_missing_are_sent_again(requests_mock):
    _batch_answer(requests_mock, [
        {"status_code": 200, "operation_id": "op0", "response": '{"id": "P0"}'},
        {"status_code": 503, "operation_id": "op1", "response": '{"title": "Unavailable"}'},
        {"status_code": 429, "operation_id": "op2", "response": '{"title": "Too Many"}'},
        {"status_code": 400, "operation_id": "op3", "response": '{"title": "Invalid"}'},
    ])  # op4: no result at all
    for i in (1, 2, 4):
        requests_mock.put(f"{BASE}/ecommerce/stores/s/products/P{i}", json={"id": f"P{i}"})
    results = WriteExecutor(client(), batch_threshold=1, poll_interval=0).execute(_puts(5))
    assert [r.ok for r in results] == [True, True, True, False, True]
    assert [r.write.record_key for r in results] == ["P0", "P1", "P2", "P3", "P4"]
    assert "Invalid" in results[3].error


def test_batch_operation_failing_on_every_retry_is_an_outage(requests_mock):
    _batch_answer(requests_mock, [
        {"status_code": 500, "operation_id": "op0", "response": '{"title": "Oops"}'}])
    requests_mock.put(f"{BASE}/ecommerce/stores/s/products/P0", status_code=500)
    with pytest.raises(OutageError):  # so the target stops before emitting STATE
        WriteExecutor(client(max_tries=2), batch_threshold=1, poll_interval=0).execute(
            _puts(1))


def test_batch_operations_with_an_unreadable_2xx_answer_are_sent_again(requests_mock):
    _batch_answer(requests_mock, [
        {"status_code": 200, "operation_id": "op0", "response": '{"id": "P'},  # cut off
        {"status_code": 200, "operation_id": "op1", "response": ""},
        {"status_code": 204, "operation_id": "op2", "response": ""},  # legitimately empty
    ])
    for i in (0, 1):
        requests_mock.put(f"{BASE}/ecommerce/stores/s/products/P{i}", json={"id": f"P{i}"})
    results = WriteExecutor(client(), batch_threshold=1, poll_interval=0).execute(_puts(3))
    assert [(r.ok, r.response) for r in results] == [
        (True, {"id": "P0"}), (True, {"id": "P1"}), (True, None)]
    assert [r.method for r in requests_mock.request_history].count("PUT") == 2


def test_a_cut_off_results_archive_is_downloaded_again(requests_mock):
    results = [{"status_code": 200, "operation_id": "op0", "response": '{"id": "P0"}'}]
    _batch_answer(requests_mock, results)
    good = _archive(results)
    requests_mock.get(f"{BASE}/results.tar.gz", [{"content": good[: len(good) // 2]},
                                                  {"content": b""}, {"content": good}])
    [result] = WriteExecutor(client(), batch_threshold=1, poll_interval=0).execute(_puts(1))
    assert result.ok and result.response == {"id": "P0"}
    downloads = [r for r in requests_mock.request_history if r.path.endswith("tar.gz")]
    assert len(downloads) == 3
