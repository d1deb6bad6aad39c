"""Fewer calls when nothing changed: the division check (system/Divisions, current/Me) is kept
in the state for `division_check_interval` seconds, so an empty incremental run makes one call
per feed and division and nothing else; a move is still found once the interval has passed.
"""

from __future__ import annotations

import json
import time

from tap_exactonline.divisions import CHECK_STATE_KEY

FEEDS = ("sync/CRM/Accounts", "sync/CRM/Contacts", "sync/SalesInvoice/SalesInvoices",
         "sync/Deleted", "bulk/Cashflow/Receivables", "hrm/Costcenters")


def _no_float(text: str) -> None:
    raise AssertionError(f"a fractional number in the state: {text}")


def _by_endpoint(sandbox) -> dict[str, int]:
    return dict(sandbox.calls()["by_endpoint"])


def test_an_empty_incremental_costs_one_call_per_feed_and_division(
        exact_sandbox, config_for, run_tap):
    # all_divisions, as the project's Meltano job runs (the list comes from system/Divisions).
    config = config_for(exact_sandbox, all_divisions=True, division_check_interval=3600)
    first = run_tap(config)
    assert _by_endpoint(exact_sandbox)["GET system/Divisions"] == 1
    # No fractional number in the state: targets read numbers as Decimal and their JSON state
    # would break (the check's time is text, like every bookmark).
    assert isinstance(first.state[CHECK_STATE_KEY]["checked_at"], str)
    json.loads(json.dumps(first.state), parse_float=_no_float)
    exact_sandbox.reset_calls()

    second = run_tap(config, state=first.state)

    assert _by_endpoint(exact_sandbox) == {f"GET {feed}": 3 for feed in FEEDS}  # 18, no more
    assert {r["Division"] for r in second.records("cost_centers")} <= {101, 102, 103}
    # The bookmarks are where the first run left them (the overlap re-reads Modified rows).
    for stream in ("accounts", "contacts", "sales_invoices", "deletions"):
        for division in (101, 102, 103):
            assert second.bookmark(stream, division)["replication_key_value"] == \
                first.bookmark(stream, division)["replication_key_value"]

    # Without divisions configured, current/Me is kept as well.
    current = {k: v for k, v in config.items() if k != "all_divisions"}
    third = run_tap(current, state=second.state, select=["accounts"])
    exact_sandbox.reset_calls()
    run_tap(current, state=third.state, select=["accounts"])
    assert _by_endpoint(exact_sandbox) == {"GET sync/CRM/Accounts": 1}


def test_a_move_is_found_at_the_first_check_after_the_interval(
        exact_sandbox, config_for, run_tap):
    config = config_for(exact_sandbox, divisions=[101, 102], division_check_interval=1)
    first = run_tap(config, select=["accounts"])
    exact_sandbox.move_division(101)
    time.sleep(1.1)
    exact_sandbox.reset_calls()

    second = run_tap(config, state=first.state, select=["accounts"])

    assert _by_endpoint(exact_sandbox)["GET system/Divisions"] == 1
    assert {r["ID"] for r in second.records("accounts")} == {
        r["ID"] for r in exact_sandbox.rows("Accounts", 101)}  # 101 read again in full
    assert second.bookmark("accounts", 101)["division_move_date"] != first.bookmark(
        "accounts", 101)["division_move_date"]


def test_by_default_every_run_checks_the_divisions(exact_sandbox, config_for, run_tap):
    config = config_for(exact_sandbox, divisions=[101])
    first = run_tap(config, select=["accounts"])
    exact_sandbox.reset_calls()
    run_tap(config, state=first.state, select=["accounts"])
    assert _by_endpoint(exact_sandbox) == {"GET system/Divisions": 1, "GET sync/CRM/Accounts": 1}
