"""`mark_incomplete_read` (set by the `reconcile` job): a run that stopped early on Exact's
daily budget says so in its last STATE, so a target taking the input as ALL of Exact's data
(target-mailchimp's reconcile mode) archives nobody. Off (the schedule's job), no mark."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("mark", [True, False])
def test_a_run_stopped_by_the_daily_budget_marks_its_last_state(
        exact_sandbox_factory: Any, config_for: Any, run_tap: Any, mark: bool) -> None:
    sandbox = exact_sandbox_factory(accounts_per_division=3, daily_limit=2)
    run = run_tap(config_for(sandbox, divisions=[101], mark_incomplete_read=mark),
                  select=["accounts", "contacts", "cost_centers"])
    assert run.state.get("incomplete_read") is (True if mark else None)
    assert run.state["bookmarks"]  # the bookmarks reached are there either way


def test_a_complete_run_is_not_marked(exact_sandbox: Any, config_for: Any,
                                      run_tap: Any) -> None:
    run = run_tap(config_for(exact_sandbox, divisions=[101], mark_incomplete_read=True),
                  select=["accounts"])
    assert "incomplete_read" not in run.state and run.records("accounts")
