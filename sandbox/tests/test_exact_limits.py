"""Rate limits and injected faults of the Exact simulator, over real HTTP."""

from __future__ import annotations

import types

import pytest
import requests
from exactmc_sandbox.exact import ratelimit

MINUTELY = {"X-RateLimit-Minutely-Limit", "X-RateLimit-Minutely-Remaining",
            "X-RateLimit-Minutely-Reset"}
DAILY = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def _login(sandbox, region="nl"):
    tokens = requests.post(f"{sandbox.base_url(region)}/api/oauth2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token(region),
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}).json()
    return {"Accept": "application/json", "Authorization": f"Bearer {tokens['access_token']}"}


def _items(sandbox, headers, division=101, **kwargs):
    return requests.get(f"{sandbox.base_url()}/api/v1/{division}/logistics/Items",
                        headers=headers, timeout=kwargs.pop("timeout", 10), **kwargs)


def _header_names(answer):
    return {name for name in answer.headers if name.startswith("X-RateLimit")}


class LimiterClock:
    """The limiter's real time, set by the test: windows and resets cannot depend on how fast
    a busy machine answers (calls straddling a window boundary once failed a test)."""

    def __init__(self) -> None:
        self.now = 1_700_000_079.75  # 20.25 s before a whole minute (epoch 1_700_000_100)

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = LimiterClock()
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=clock.time))
    return clock


def test_rate_limit_headers_count_down_with_millisecond_resets(exact_sandbox_factory, clock):
    sandbox = exact_sandbox_factory(minutely_limit=5, daily_limit=100)
    headers = _login(sandbox)
    first, second = _items(sandbox, headers), _items(sandbox, headers)
    assert _header_names(first) == MINUTELY | DAILY
    assert first.headers["X-RateLimit-Minutely-Limit"] == "5"
    assert first.headers["X-RateLimit-Limit"] == "100"
    assert (first.headers["X-RateLimit-Minutely-Remaining"],
            second.headers["X-RateLimit-Minutely-Remaining"]) == ("4", "3")
    assert second.headers["X-RateLimit-Remaining"] == "98"
    minute_reset = int(first.headers["X-RateLimit-Minutely-Reset"])
    day_reset = int(first.headers["X-RateLimit-Reset"])
    # Epoch milliseconds: the next whole minute / a day after the window opened.
    assert minute_reset == 1_700_000_100_000
    assert day_reset == 1_700_000_079_750 + 86_400_000
    clock.now += 20.2  # still that minute
    assert _items(sandbox, headers).headers["X-RateLimit-Minutely-Remaining"] == "2"
    clock.now = 1_700_000_100  # the next one: a whole budget again, the day goes on
    third = _items(sandbox, headers)
    assert third.headers["X-RateLimit-Minutely-Remaining"] == "4"
    assert third.headers["X-RateLimit-Minutely-Reset"] == "1700000160000"
    assert third.headers["X-RateLimit-Remaining"] == "96"


def test_minutely_429_shows_only_minutely_headers_and_resets(exact_sandbox_factory, clock):
    sandbox = exact_sandbox_factory(minutely_limit=3, minute_seconds=2)
    headers = _login(sandbox)
    assert [_items(sandbox, headers).status_code for _ in range(3)] == [200, 200, 200]
    refused = _items(sandbox, headers)
    assert refused.status_code == 429
    assert _header_names(refused) == MINUTELY
    assert refused.headers["X-RateLimit-Minutely-Remaining"] == "0"
    # Limits are per division: 102 still has its own budget.
    assert _items(sandbox, headers, division=102).status_code == 200
    reset_at = int(refused.headers["X-RateLimit-Minutely-Reset"]) / 1000
    assert reset_at == 1_700_000_080  # the next whole 2 s "minute"
    clock.now = reset_at - 0.001
    assert _items(sandbox, headers).status_code == 429
    clock.now = reset_at
    assert _items(sandbox, headers).status_code == 200


def test_daily_429_shows_only_daily_headers(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(daily_limit=2)
    headers = _login(sandbox)
    assert [_items(sandbox, headers).status_code for _ in range(2)] == [200, 200]
    refused = _items(sandbox, headers)
    assert refused.status_code == 429 and _header_names(refused) == DAILY
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_me_and_token_calls_do_not_use_the_division_budget(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(minutely_limit=2)
    headers = _login(sandbox)
    for _ in range(3):
        me = requests.get(f"{sandbox.base_url()}/api/v1/current/Me", headers=headers, timeout=10)
        assert me.status_code == 200 and not _header_names(me)
    assert _items(sandbox, headers).headers["X-RateLimit-Minutely-Remaining"] == "1"


def test_status_fault_comes_before_auth_and_is_counted(exact_sandbox):
    exact_sandbox.add_fault(path=r"/logistics/Items", kind="status", status=503, count=2,
                            body={"error": "maintenance"})
    no_auth = {"Accept": "application/json"}
    answers = [_items(exact_sandbox, no_auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 401]
    assert answers[0].json() == {"error": "maintenance"}
    calls = exact_sandbox.calls()
    assert calls["by_endpoint"]["GET logistics/Items"] == 3
    assert calls["by_division"]["101"] == 3
    assert [c["status"] for c in calls["calls"]] == [503, 503, 401]


def test_slow_fault_delays_then_answers(exact_sandbox):
    headers = _login(exact_sandbox)
    exact_sandbox.add_fault(path=r"/logistics/Items", kind="slow", delay=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _items(exact_sandbox, headers, timeout=0.2)
    assert _items(exact_sandbox, headers).status_code == 200


def test_drop_fault_closes_the_connection(exact_sandbox):
    headers = _login(exact_sandbox)
    exact_sandbox.add_fault(path=r"/sync/", kind="drop", count=1)
    url = f"{exact_sandbox.base_url()}/api/v1/101/sync/CRM/Accounts"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, params={"$select": "ID"}, headers=headers, timeout=10)
    assert requests.get(url, params={"$select": "ID"}, headers=headers,
                        timeout=10).status_code == 200
    assert exact_sandbox.calls()["by_endpoint"]["GET sync/CRM/Accounts"] == 2


def test_fault_control_endpoints_are_not_counted(exact_sandbox):
    control = f"{exact_sandbox.url}/_sandbox"
    added = requests.post(f"{control}/faults", json={"path": "/crm/", "kind": "status",
                                                     "status": 500}, timeout=10)
    assert added.status_code == 201
    assert requests.get(f"{control}/faults", timeout=10).json()[0]["status"] == 500
    requests.delete(f"{control}/faults", timeout=10)
    assert requests.get(f"{control}/faults", timeout=10).json() == []
    assert requests.get(f"{control}/calls", timeout=10).json()["total"] == 0


def test_error_limit_blocks_one_endpoint_when_enabled(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(error_limit=3)
    headers = _login(sandbox)
    no_token = {"Accept": "application/json"}
    assert [_items(sandbox, no_token).status_code for _ in range(3)] == [401, 401, 401]
    blocked = _items(sandbox, headers)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 3000
    costcenters = f"{sandbox.base_url()}/api/v1/101/hrm/Costcenters"
    assert requests.get(costcenters, headers=headers, timeout=10).status_code == 200


def test_error_limit_is_off_by_default(exact_sandbox):
    no_token = {"Accept": "application/json"}
    assert {_items(exact_sandbox, no_token).status_code for _ in range(12)} == {401}
    assert _items(exact_sandbox, _login(exact_sandbox)).status_code == 200
