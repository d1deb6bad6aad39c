"""Narrow client cases with requests-mock: error shapes, retries, no credentials in errors."""

from __future__ import annotations

import pytest
import requests
from target_mailchimp.auth import ApiKeyAuth
from target_mailchimp.client import ApiError, MailchimpClient, OutageError, subscriber_hash

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
    assert client().download("https://storage.example/result.tar.gz") == b"x"
    assert "Authorization" not in requests_mock.last_request.headers


def test_subscriber_hash_is_md5_of_lowercased_email():
    assert subscriber_hash(" Urist.McVankab@Freddiesjokes.com ") == (
        "62eeb292278cc15f5817cb78f7790b08")
