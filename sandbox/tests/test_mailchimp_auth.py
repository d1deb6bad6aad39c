"""Credentials: API keys (Basic), OAuth tokens (Bearer/OAuth), the metadata endpoint, the CLI."""

from __future__ import annotations

import re
import subprocess
import sys

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def test_api_key_as_basic_password_with_any_user(mailchimp_sandbox: MailchimpSandbox) -> None:
    for user in ("anystring", "", "someone"):
        response = requests.get(f"{mailchimp_sandbox.api_base}/ping",
                                auth=(user, mailchimp_sandbox.api_key), timeout=5)
        assert response.status_code == 200
        assert response.json() == {"health_status": "Everything's Chimpy!"}


def test_wrong_or_missing_key_is_401_problem_json(mailchimp_sandbox: MailchimpSandbox) -> None:
    wrong = requests.get(f"{mailchimp_sandbox.api_base}/lists",
                         auth=("u", "0" * 32 + "-us6"), timeout=5)
    missing = requests.get(f"{mailchimp_sandbox.api_base}/lists", timeout=5)
    for response in (wrong, missing):
        assert response.status_code == 401
        assert response.headers["Content-Type"].startswith("application/problem+json")
        body = response.json()
        assert body["title"] == "API Key Invalid"
        assert {"type", "title", "status", "detail", "instance"} <= set(body)


def test_oauth_token_as_bearer_or_oauth(mailchimp_sandbox: MailchimpSandbox) -> None:
    for scheme in ("Bearer", "OAuth"):
        response = requests.get(
            f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}",
            headers={"Authorization": f"{scheme} {mailchimp_sandbox.oauth_token}"}, timeout=5)
        assert response.status_code == 200
        assert response.json()["name"] == "Exact Customers"
    bad = requests.get(f"{mailchimp_sandbox.api_base}/ping",
                       headers={"Authorization": "Bearer not-a-token"}, timeout=5)
    assert bad.status_code == 401


def test_oauth_metadata(mailchimp_sandbox: MailchimpSandbox) -> None:
    good = requests.get(f"{mailchimp_sandbox.url}/oauth2/metadata",
                        headers={"Authorization": f"OAuth {mailchimp_sandbox.oauth_token}"},
                        timeout=5)
    assert good.status_code == 200
    body = good.json()
    assert body["dc"] == "us6"
    assert body["role"] == "owner"
    assert body["api_endpoint"] == mailchimp_sandbox.url
    assert "login" in body and body["accountname"]
    # The endpoint advertised works as an API base once /3.0 is appended.
    ping = requests.get(f"{body['api_endpoint']}/3.0/ping",
                        headers={"Authorization": f"Bearer {mailchimp_sandbox.oauth_token}"},
                        timeout=5)
    assert ping.status_code == 200

    bad = requests.get(f"{mailchimp_sandbox.url}/oauth2/metadata",
                       headers={"Authorization": "OAuth wrong"}, timeout=5)
    assert bad.status_code == 200
    assert bad.json() == {"error": "invalid_token"}


def test_lists_endpoint_and_seeded_audience(mailchimp_sandbox: MailchimpSandbox) -> None:
    response = requests.get(f"{mailchimp_sandbox.api_base}/lists",
                            auth=("u", mailchimp_sandbox.api_key), timeout=5)
    lists = response.json()["lists"]
    assert [(lst["id"], lst["name"]) for lst in lists] == [
        (mailchimp_sandbox.list_id, "Exact Customers")]
    missing = requests.get(f"{mailchimp_sandbox.api_base}/lists/nope",
                           auth=("u", mailchimp_sandbox.api_key), timeout=5)
    assert missing.status_code == 404
    assert missing.json()["title"] == "Resource Not Found"


def test_keys_are_random_and_never_exposed(mailchimp_sandbox_factory) -> None:
    first, second = mailchimp_sandbox_factory(), mailchimp_sandbox_factory()
    assert first.api_key != second.api_key
    assert first.api_key.endswith("-us6") and len(first.api_key.split("-")[0]) == 32
    requests.get(f"{first.api_base}/ping", auth=("u", first.api_key), timeout=5)
    requests.get(f"{first.api_base}/ping", auth=("u", "bad"), timeout=5)
    calls = requests.get(f"{first.url}/_sandbox/calls", timeout=5).text
    assert first.api_key not in calls and first.oauth_token not in calls
    assert first.api_key not in repr(first)
    # A key of another sandbox does not open this one.
    assert requests.get(f"{first.api_base}/ping", auth=("u", second.api_key),
                        timeout=5).status_code == 401


def test_configured_keys_and_tokens(mailchimp_sandbox_factory) -> None:
    sandbox = mailchimp_sandbox_factory(api_keys=["a" * 32 + "-us1", "b" * 32 + "-us2"],
                                        oauth_token="tok", list_id="list123")
    assert sandbox.list_id == "list123"
    for key in ("a" * 32 + "-us1", "b" * 32 + "-us2"):
        assert requests.get(f"{sandbox.api_base}/ping", auth=("u", key),
                            timeout=5).status_code == 200
    assert requests.get(f"{sandbox.api_base}/ping", headers={"Authorization": "Bearer tok"},
                        timeout=5).status_code == 200


def test_cli_serves_and_prints_url_and_list_but_not_the_key(tmp_path) -> None:
    key = "c" * 32 + "-us6"
    key_file = tmp_path / "key"
    process = subprocess.Popen(
        [sys.executable, "-m", "exactmc_sandbox.cli", "mailchimp", "--port", "0",
         "--list-id", "L1", "--api-key", key, "--api-key-file", str(key_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first).group(0)
        assert "L1" in second
        ping = requests.get(f"{url}/3.0/ping", auth=("u", key), timeout=5)
        assert ping.status_code == 200
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert key not in first + second + out + err
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_oauth_metadata_can_be_faulted(mailchimp_sandbox: MailchimpSandbox) -> None:
    mailchimp_sandbox.add_fault(path="^/oauth2/metadata$", status=503, count=1)
    headers = {"Authorization": f"OAuth {mailchimp_sandbox.oauth_token}"}
    url = f"{mailchimp_sandbox.url}/oauth2/metadata"
    assert requests.get(url, headers=headers, timeout=5).status_code == 503
    assert requests.get(url, headers=headers, timeout=5).json()["dc"] == "us6"
    assert mailchimp_sandbox.calls()["by_endpoint"]["GET /oauth2/metadata"] == 2
