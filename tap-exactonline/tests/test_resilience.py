"""Rate limits, server failures, dropped connections and the daily budget (real HTTP).

The sandbox's "minute" is shortened to 2 seconds so pacing is exercised without long sleeps.
"""

from __future__ import annotations

import json
import time
import types
from typing import Any

import pytest
import requests
from exactmc_sandbox.exact import ratelimit
from singer_sdk.exceptions import FatalAPIError


def _statuses(sandbox, endpoint: str) -> list[int]:
    return [c["status"] for c in sandbox.calls()["calls"] if c["endpoint"] == endpoint]


def test_pacing_waits_for_the_minutely_reset_instead_of_hitting_429(
    exact_sandbox_factory, config_for, run_tap
):
    sandbox = exact_sandbox_factory(accounts_per_division=5, minutely_limit=3, minute_seconds=2)
    run = run_tap(config_for(sandbox, divisions=[101]),
                  select=["accounts", "contacts", "cost_centers", "deletions"])

    assert len(run.records("accounts")) == len(sandbox.rows("Accounts", 101))
    assert len(run.records("contacts")) == len(sandbox.rows("Contacts", 101))
    statuses = [c["status"] for c in sandbox.calls()["calls"]]
    assert len(statuses) == 6 and 429 not in statuses


def _burn_calls(sandbox, calls: int, division: int = 101) -> None:
    """Another client of the same app spends `calls` of the division's budget."""
    tokens = requests.post(f"{sandbox.base_url()}/api/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token(),
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}, timeout=5).json()
    for _ in range(calls):
        requests.get(f"{sandbox.base_url()}/api/v1/{division}/system/Divisions", timeout=5,
                     headers={"Authorization": f"Bearer {tokens['access_token']}",
                              "Accept": "application/json"})


def test_429_waits_for_the_reset_then_retries(exact_sandbox_factory, config_for, run_tap,
                                             monkeypatch):
    # The sandbox limiter's clock stands still until it refuses a call, then moves to the next
    # window: the burnt budget is still spent when a busy machine's tap starts (> 2 s once).
    now = [(time.time() // 2) * 2 + 0.1]
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now[0]))
    sandbox = exact_sandbox_factory(accounts_per_division=5, minutely_limit=2, minute_seconds=2)
    take = sandbox.limiter.take

    def take_then_open_the_next_window(client_id: str, division: int) -> Any:
        decision = take(client_id, division)
        if decision.exhausted == "minutely":
            now[0] = (now[0] // 2) * 2 + 2
        return decision

    monkeypatch.setattr(sandbox.limiter, "take", take_then_open_the_next_window)
    _burn_calls(sandbox, 2)

    run = run_tap(config_for(sandbox, divisions=[101]), select=["accounts"])

    assert len(run.records("accounts")) == len(sandbox.rows("Accounts", 101))
    assert _statuses(sandbox, "system/Divisions")[-2:] == [429, 200]


def test_server_errors_are_retried(exact_sandbox, config_for, run_tap):
    exact_sandbox.add_fault(path="sync/CRM/Accounts", status=503, count=2)
    run = run_tap(config_for(exact_sandbox, divisions=[101]), select=["accounts"])
    assert len(run.records("accounts")) == len(exact_sandbox.rows("Accounts", 101))
    assert _statuses(exact_sandbox, "sync/CRM/Accounts") == [503, 503, 200]


def test_dropped_connections_and_timeouts_are_retried(exact_sandbox, config_for, run_tap):
    exact_sandbox.add_fault(path="sync/CRM/Contacts", kind="drop", count=1)
    # A 1 s timeout (was 0.5): a busy machine's other calls stay well within it (and are
    # retried if not); the held one (3 s, not waited for) times out.
    exact_sandbox.add_fault(path="hrm/Costcenters", kind="slow", delay=3, count=1)
    config = config_for(exact_sandbox, divisions=[101], request_timeout=1)
    run = run_tap(config, select=["contacts", "cost_centers"])
    assert len(run.records("contacts")) == len(exact_sandbox.rows("Contacts", 101))
    assert len(run.records("cost_centers")) == len(exact_sandbox.rows("Costcenters", 101))


def test_client_errors_are_fatal_and_never_repeated(exact_sandbox, config_for, run_tap):
    body = {"error": {"code": "", "message": {"lang": "", "value": "Bad filter value"}}}
    exact_sandbox.add_fault(path="sync/CRM/Accounts", status=400, body=body, count=5)
    config = config_for(exact_sandbox, divisions=[101])
    with pytest.raises(FatalAPIError, match="Bad filter value") as error:
        run_tap(config, select=["accounts"])
    assert exact_sandbox.calls()["by_endpoint"]["GET sync/CRM/Accounts"] == 1
    assert config["client_secret"] not in str(error.value)


def test_daily_budget_spent_stops_cleanly_and_the_next_run_resumes(
    exact_sandbox_factory, config_for, run_tap_process, tmp_path
):
    # 4 calls a day per division, 6 streams: three get a turn today, the others next time.
    sandbox = exact_sandbox_factory(accounts_per_division=5, daily_limit=4)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config_for(sandbox, divisions=[101, 102])))

    first = run_tap_process(config_path)

    assert first.returncode == 0, first.logs[-2000:]
    assert "Stopped early to share Exact's daily call limit fairly" in first.logs
    assert first.counts["accounts"] == len(sandbox.rows("Accounts", 101)) + len(
        sandbox.rows("Accounts", 102))
    assert first.counts["receivables"] == 0  # its turn comes next run
    assert 429 not in [c["status"] for c in sandbox.calls()["calls"]]  # stopped, not hammered
    first_state = first.state
    assert first_state["bookmarks"]["accounts"]["partitions"][0]["replication_key_value"]

    sandbox.start_new_day()
    state_path = tmp_path / "state.json"
    state_path.write_text(json.dumps(first_state))
    second = run_tap_process(config_path, state_path)

    assert second.returncode == 0
    assert second.counts["accounts"] == 0  # resumed from the bookmarks
    assert second.counts["receivables"] == len(sandbox.rows("Receivables", 101)) + len(
        sandbox.rows("Receivables", 102))
    assert first.counts["sales_invoices"] + second.counts["sales_invoices"] == len(
        sandbox.rows("SalesInvoices", 101)) + len(sandbox.rows("SalesInvoices", 102))


def test_daily_429_stops_that_division_and_the_others_go_on(
    exact_sandbox_factory, config_for, run_tap
):
    sandbox = exact_sandbox_factory(accounts_per_division=5, daily_limit=3)
    _burn_calls(sandbox, 3, division=102)  # division 102's day is already used up
    sandbox.reset_calls()

    run = run_tap(config_for(sandbox, divisions=[101, 102]), select=["accounts", "contacts"])

    assert {r["Division"] for r in run.records("accounts")} == {101}
    assert len(run.records("contacts")) == len(sandbox.rows("Contacts", 101))
    calls_102 = [c["status"] for c in sandbox.calls()["calls"] if c["division"] == 102]
    assert calls_102 == [429]  # refused once, then left alone


def test_budget_spent_midway_through_an_unordered_stream_resumes_after_the_last_page(
    exact_sandbox_factory, config_for, run_tap
):
    sandbox = exact_sandbox_factory(accounts_per_division=1100, daily_limit=2)
    config = config_for(sandbox, divisions=[101], start_date="2000-01-01T00:00:00Z")
    rows = sandbox.rows("Receivables", 101)
    assert len(rows) > 1000

    first = run_tap(config, select=["receivables"])  # system/Divisions + one page of 1,000

    assert len(first.records("receivables")) == 1000
    # Rows come unordered: no bookmark yet, but where to go on and the highest value so far.
    partition = first.bookmark("receivables", 101)
    assert "replication_key_value" not in partition
    assert "$skiptoken=" in partition["resume"]["next"]

    sandbox.start_new_day()
    second = run_tap(config, state=first.state, select=["receivables"])

    ids = [r["ID"] for run in (first, second) for r in run.records("receivables")]
    assert sorted(ids) == sorted(r["ID"] for r in rows)  # each exactly once
    done = second.bookmark("receivables", 101)
    assert "resume" not in done
    assert done["replication_key_value"] == max(
        (r["Modified"] for run in (first, second) for r in run.records("receivables")),
        key=lambda v: v.replace(".000", ""))


def test_division_move_is_seen_when_the_first_division_has_no_calls_left(
    exact_sandbox_factory, config_for, run_tap
):
    sandbox = exact_sandbox_factory(accounts_per_division=5)
    config = config_for(sandbox, divisions=[101, 102])
    first = run_tap(config, select=["accounts"])
    sandbox.move_division(102)
    sandbox.limiter.settings.daily_limit = 8
    _burn_calls(sandbox, 8, division=101)  # 101's day is used up; 102 has calls left

    second = run_tap(config, state=first.state, select=["accounts"])

    # system/Divisions is asked of 102 instead, so its move is noticed: a full resync.
    assert {r["ID"] for r in second.records("accounts")} == {
        r["ID"] for r in sandbox.rows("Accounts", 102)}
    kept = second.bookmark("accounts", 101)
    assert kept.pop("budget_turns_missed") == 1  # it goes first when calls are scarce again
    assert kept == first.bookmark("accounts", 101)


def test_a_row_changed_behind_a_read_spread_over_runs_is_read_again(
    exact_sandbox_factory, config_for, run_tap
):
    sandbox = exact_sandbox_factory(accounts_per_division=1100, daily_limit=2)
    config = config_for(sandbox, divisions=[101], start_date="2000-01-01T00:00:00Z")
    first = run_tap(config, select=["receivables"])  # page 1 of 2
    read = {r["ID"] for r in first.records("receivables")}
    rows = sandbox.rows("Receivables", 101)
    behind = next(r["ID"] for r in rows if r["ID"] in read and not r["IsFullyPaid"])
    ahead = next(r["ID"] for r in rows if r["ID"] not in read and not r["IsFullyPaid"])
    sandbox.pay_receivable(behind)  # on a page already read
    sandbox.advance_clock(3600)
    sandbox.pay_receivable(ahead)  # later, on the page still to read

    sandbox.start_new_day()
    second = run_tap(config, state=first.state, select=["receivables"])  # page 2: read done
    assert ahead in {r["ID"] for r in second.records("receivables")}
    sandbox.start_new_day()
    third = run_tap(config, state=second.state, select=["receivables"])

    # The bookmark stopped at the read's start, not at the later change it saw on page 2.
    paid = [r for r in third.records("receivables") if r["ID"] == behind]
    assert paid and paid[0]["IsFullyPaid"] is True
