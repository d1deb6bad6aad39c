"""OAuth against the Exact simulator over real HTTP: codes, rotation, refusals, expiry, regions."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pytest
import requests

JSON = {"Accept": "application/json"}


def _token(sandbox, region="nl", **form):
    form = {"client_id": sandbox.client_id, "client_secret": sandbox.client_secret, **form}
    return requests.post(f"{sandbox.base_url(region)}/api/oauth2/token", data=form, timeout=10)


def _refresh(sandbox, refresh_token, region="nl"):
    return _token(sandbox, region, grant_type="refresh_token", refresh_token=refresh_token)


def _me(sandbox, access_token, region="nl"):
    return requests.get(f"{sandbox.base_url(region)}/api/v1/current/Me", timeout=10,
                        headers={**JSON, "Authorization": f"Bearer {access_token}"})


def test_authorize_redirects_with_single_use_code_and_state(exact_sandbox):
    answer = requests.get(
        f"{exact_sandbox.base_url()}/api/oauth2/auth", allow_redirects=False, timeout=10,
        params={"client_id": exact_sandbox.client_id, "redirect_uri": "http://localhost:9/cb",
                "response_type": "code", "force_login": "0", "state": "xyz 1"},
    )
    assert answer.status_code == 302
    location = urlparse(answer.headers["Location"])
    assert location.netloc == "localhost:9" and location.path == "/cb"
    query = parse_qs(location.query)
    assert query["state"] == ["xyz 1"]
    code = query["code"][0]

    first = _token(exact_sandbox, grant_type="authorization_code", code=code,
                   redirect_uri="http://localhost:9/cb")
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == "600"  # a string, as Exact sends it
    assert _me(exact_sandbox, body["access_token"]).json()["d"]["results"][0][
        "CurrentDivision"] == 101

    again = _token(exact_sandbox, grant_type="authorization_code", code=code,
                   redirect_uri="http://localhost:9/cb")
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_authorization_code_expires(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(code_seconds=180)
    answer = requests.get(f"{sandbox.base_url()}/api/oauth2/auth", allow_redirects=False,
                          params={"client_id": sandbox.client_id, "redirect_uri": "http://x/cb"},
                          timeout=10)
    code = parse_qs(urlparse(answer.headers["Location"]).query)["code"][0]
    sandbox.advance_clock(181)
    assert _token(sandbox, grant_type="authorization_code", code=code).status_code == 400


def test_refresh_rotates_and_old_token_dies_once_successor_used(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=0)
    first = sandbox.issue_refresh_token()
    second = _refresh(sandbox, first).json()["refresh_token"]
    assert second != first
    third = _refresh(sandbox, second)
    assert third.status_code == 200

    old = _refresh(sandbox, first)
    assert old.status_code == 401
    assert old.json() == {"error": "unauthorized_client",
                          "error_description": "Old refresh token used."}
    assert _refresh(sandbox, third.json()["refresh_token"]).status_code == 200


def test_old_refresh_token_lingers_until_successor_is_used(exact_sandbox_factory):
    """The timed-out-refresh case: the client never saw the successor and retries."""
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=0)
    first = sandbox.issue_refresh_token()
    lost = _refresh(sandbox, first).json()["refresh_token"]
    retried = _refresh(sandbox, first)
    assert retried.status_code == 200
    assert _refresh(sandbox, lost).status_code == 400  # the unused successor was replaced
    assert _refresh(sandbox, retried.json()["refresh_token"]).status_code == 200


def test_old_refresh_token_dies_once_the_new_access_token_is_used(exact_sandbox_factory):
    """Exact: "upon first use for an API call ..., all previous refresh tokens expire"."""
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=0)
    first = sandbox.issue_refresh_token()
    second = _refresh(sandbox, first).json()
    assert _me(sandbox, second["access_token"]).status_code == 200

    old = _refresh(sandbox, first)
    assert old.status_code == 401
    assert old.json()["error_description"] == "Old refresh token used."
    assert _refresh(sandbox, second["refresh_token"]).status_code == 200


def test_all_earlier_refresh_tokens_die_on_first_use_of_a_new_pair(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=0)
    first = sandbox.issue_refresh_token()
    second = _refresh(sandbox, first).json()
    third = _refresh(sandbox, first).json()  # second pair lost: first presented again
    assert _me(sandbox, third["access_token"]).status_code == 200
    assert _refresh(sandbox, first).status_code == 401
    assert _refresh(sandbox, second["refresh_token"]).status_code in (400, 401)
    assert _refresh(sandbox, third["refresh_token"]).status_code == 200


def test_a_refused_api_call_does_not_count_as_use(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=0, access_token_seconds=60)
    first = sandbox.issue_refresh_token()
    second = _refresh(sandbox, first).json()
    sandbox.advance_clock(61)  # the new access token expired unused
    assert _me(sandbox, second["access_token"]).status_code == 401
    assert _refresh(sandbox, first).status_code == 200


def test_unused_successor_keeps_the_old_refresh_token_alive(exact_sandbox):
    """A lost refresh (answer never arrived): the next scheduled run can still recover."""
    first = exact_sandbox.issue_refresh_token()
    lost = _refresh(exact_sandbox, first)
    assert lost.status_code == 200
    exact_sandbox.advance_clock(900)  # the next 15-minute run
    assert _refresh(exact_sandbox, first).status_code == 200


def test_a_linger_limit_can_be_set(exact_sandbox_factory):
    """The stricter reading ("it may linger ~10 minutes"), for clients to be tested against."""
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=0, refresh_linger_seconds=600)
    first = sandbox.issue_refresh_token()
    assert _refresh(sandbox, first).status_code == 200
    sandbox.advance_clock(601)
    assert _refresh(sandbox, first).status_code == 401


def test_refresh_too_early_is_refused_and_current_token_keeps_working(exact_sandbox):
    first = exact_sandbox.issue_refresh_token()
    tokens = _refresh(exact_sandbox, first).json()
    early = _refresh(exact_sandbox, tokens["refresh_token"])
    assert early.status_code == 400
    assert early.json() == {"error": "access_denied",
                            "error_description": "Rate limit exceeded: access_token not expired"}
    assert early.headers["Reason"].startswith("TooEarlyToRefreshTokens")
    assert _me(exact_sandbox, tokens["access_token"]).status_code == 200

    exact_sandbox.advance_clock(571)
    later = _refresh(exact_sandbox, tokens["refresh_token"])
    assert later.status_code == 200


def test_access_token_expires(exact_sandbox):
    tokens = _refresh(exact_sandbox, exact_sandbox.issue_refresh_token()).json()
    assert _me(exact_sandbox, tokens["access_token"]).status_code == 200
    exact_sandbox.advance_clock(600)
    expired = _me(exact_sandbox, tokens["access_token"])
    assert expired.status_code == 401
    assert expired.json()["error"]["message"]["value"] == "Unauthorized"


def test_refresh_token_expires_after_its_lifetime(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(refresh_token_seconds=3600)
    token = sandbox.issue_refresh_token()
    sandbox.advance_clock(3601)
    answer = _refresh(sandbox, token)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["error_description"].startswith("The refresh token expired at ")


def test_wrong_client_secret_is_refused_without_echoing_it(exact_sandbox):
    token = exact_sandbox.issue_refresh_token()
    answer = _token(exact_sandbox, grant_type="refresh_token", refresh_token=token,
                    client_secret="not-the-secret")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client"
    assert "not-the-secret" not in answer.text
    assert exact_sandbox.client_secret not in answer.text
    # The refusal did not consume the token.
    assert _refresh(exact_sandbox, token).status_code == 200


def test_token_endpoint_requires_form_encoding(exact_sandbox):
    answer = requests.post(f"{exact_sandbox.base_url()}/api/oauth2/token", timeout=10, json={
        "grant_type": "refresh_token", "refresh_token": exact_sandbox.issue_refresh_token(),
        "client_id": exact_sandbox.client_id, "client_secret": exact_sandbox.client_secret})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_regions_are_separate_token_namespaces(exact_sandbox):
    nl = _refresh(exact_sandbox, exact_sandbox.issue_refresh_token("nl")).json()
    assert _me(exact_sandbox, nl["access_token"], "be").status_code == 401
    assert _refresh(exact_sandbox, nl["refresh_token"], region="be").status_code == 400

    be = _refresh(exact_sandbox, exact_sandbox.issue_refresh_token("be"), region="be").json()
    me = _me(exact_sandbox, be["access_token"], "be").json()["d"]["results"][0]
    assert me["CurrentDivision"] == 201


def test_bootstrap_grant_endpoint(exact_sandbox):
    url = f"{exact_sandbox.url}/_sandbox/oauth/grant"
    ok = requests.post(url, json={"client_id": exact_sandbox.client_id, "region": "nl"},
                       timeout=10)
    assert ok.status_code == 200
    assert _refresh(exact_sandbox, ok.json()["refresh_token"]).status_code == 200
    assert requests.post(url, json={"client_id": "someone-else"}, timeout=10).status_code == 400
    assert requests.post(url, json={"client_id": exact_sandbox.client_id, "region": "us"},
                         timeout=10).status_code == 400


@pytest.mark.parametrize("status", [500, 503])
def test_token_endpoint_faults_do_not_rotate(exact_sandbox_factory, status):
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=0)
    token = sandbox.issue_refresh_token()
    sandbox.add_fault(path=r"/oauth2/token$", method="POST", kind="status", status=status)
    assert _refresh(sandbox, token).status_code == status
    assert _refresh(sandbox, token).status_code == 200
    assert sandbox.calls()["by_endpoint"]["POST oauth2/token"] == 2


def test_refresh_that_times_out_has_still_rotated(exact_sandbox):
    """Exact's known field failure: the client gives up, the server has rotated anyway."""
    first = exact_sandbox.issue_refresh_token()
    exact_sandbox.add_fault(path=r"/oauth2/token$", kind="slow", delay=0.6)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{exact_sandbox.base_url()}/api/oauth2/token", timeout=0.2, data={
            "grant_type": "refresh_token", "refresh_token": first,
            "client_id": exact_sandbox.client_id, "client_secret": exact_sandbox.client_secret})
    # The server finishes the slow request after the client gave up (0.6 s; a generous
    # deadline, as a busy machine may take longer).
    deadline = time.monotonic() + 30
    while not exact_sandbox.calls()["by_endpoint"].get("POST oauth2/token"):
        assert time.monotonic() < deadline, "the slowed refresh never finished"
        time.sleep(0.05)

    # The lost pair counts: refreshing again right away is "too early" ...
    assert _refresh(exact_sandbox, first).json()["error"] == "access_denied"
    # ... and once it is allowed, the old refresh token still works (it lingers).
    exact_sandbox.advance_clock(571)
    retried = _refresh(exact_sandbox, first)
    assert retried.status_code == 200
    assert _me(exact_sandbox, retried.json()["access_token"]).status_code == 200
