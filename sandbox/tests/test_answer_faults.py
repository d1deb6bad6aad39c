"""Faults that spoil the answer after the handler ran: garbled 2xx bodies and lost answers."""

import pytest
import requests

TIMEOUT = 10


def test_garbled_and_lost_answers_from_mailchimp(mailchimp_sandbox):
    mc = mailchimp_sandbox
    ping = mc.api_base + "/ping"
    auth = ("x", mc.api_key)
    mc.add_fault(path="/ping", kind="garble")
    answer = requests.get(ping, auth=auth, timeout=TIMEOUT)
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    mc.add_fault(path="/ping", kind="garble", body="")
    assert requests.get(ping, auth=auth, timeout=TIMEOUT).content == b""
    mc.add_fault(path="/ping", kind="drop_after")
    with pytest.raises(requests.ConnectionError):
        requests.get(ping, auth=auth, timeout=TIMEOUT)
    assert requests.get(ping, auth=auth, timeout=TIMEOUT).json()["health_status"]


def test_a_token_call_served_but_never_answered(exact_sandbox):
    ex = exact_sandbox
    form = {
        "grant_type": "refresh_token",
        "refresh_token": ex.issue_refresh_token("nl"),
        "client_id": ex.client_id,
        "client_secret": ex.client_secret,
    }
    ex.add_fault(path="oauth2/token", kind="drop_after")
    with pytest.raises(requests.ConnectionError):
        requests.post(ex.base_url("nl") + "/api/oauth2/token", data=form, timeout=TIMEOUT)
    assert ex.calls()["calls"][-1]["status"] == 200  # served: the token rotated unseen
