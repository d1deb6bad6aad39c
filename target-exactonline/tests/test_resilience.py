"""Faults on Exact's side: garbled answers are retried errors, never "no contact" or "done"."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from secret_store.runlock import acquire
from tap_exactonline.credentials import token_store_name
from target_exactonline.client import ExactUnavailable
from target_exactonline.testing import audit_rows, base_config, run_target, stream

NOW = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _contact(sandbox, email: str):
    account = sandbox.rows("Accounts", 101)[0]
    return sandbox.create("Contacts", {"Division": 101, "Account": account["ID"],
                                       "LastName": "Faulty", "Email": email})


def _excluded(sandbox, key: str) -> bool:
    return next(r for r in sandbox.rows("Contacts", 101) if r["ID"] == key)["IsMailingExcluded"]


def _exclusions(*emails: str) -> list[dict]:
    return stream("mailing_exclusions", [{"email": e, "status": "unsubscribed",
                                          "changed_at": NOW, "source": "poll"} for e in emails])


@pytest.mark.parametrize("body", [None, "", '{"d": {}}', "<feed/>"])
def test_a_garbled_lookup_is_retried_not_taken_as_no_contact(exact_sandbox, tmp_path, body):
    person = _contact(exact_sandbox, "garbled@example.com")
    config = base_config(exact_sandbox, tmp_path, divisions=[101], write_exclusions=True)
    exact_sandbox.add_fault(path=r"/crm/Contacts$", method="GET", kind="garble", body=body,
                            count=1)
    exact_sandbox.add_fault(path=r"/crm/Contacts\(", method="PUT", kind="status", status=503,
                            count=1)
    run_target(config, _exclusions("garbled@example.com"))
    assert _excluded(exact_sandbox, person["ID"]) is True
    assert [r["outcome"] for r in audit_rows(config)] == ["written"]


def test_lookups_garbled_for_good_fail_the_run_without_state(exact_sandbox, tmp_path):
    person = _contact(exact_sandbox, "down@example.com")
    config = base_config(exact_sandbox, tmp_path, divisions=[101], write_exclusions=True)
    exact_sandbox.add_fault(path=r"/crm/Contacts$", method="GET", kind="garble", count=50)
    messages = [*_exclusions("down@example.com"), {"type": "STATE", "value": {"x": 1}}]
    with pytest.raises(ExactUnavailable):
        run_target(config, messages)
    assert _excluded(exact_sandbox, person["ID"]) is False
    assert audit_rows(config) == []


def test_a_create_whose_answer_was_lost_makes_one_cost_center(exact_sandbox, tmp_path):
    config = base_config(exact_sandbox, tmp_path, divisions=[101], create_cost_centers=True)
    exact_sandbox.add_fault(path=r"/hrm/Costcenters$", method="POST", kind="drop_after", count=1)
    run_target(config, stream("tags", [{"segment_id": 7, "name": "CC 777 · Lost (101)",
                                        "updated_at": NOW}]))
    made = [r for r in exact_sandbox.rows("Costcenters", 101) if r["Code"] == "777"]
    assert [r["Description"] for r in made] == ["Lost"]
    [row] = audit_rows(config)
    assert row["outcome"] == "written" and row["entity_key"] == made[0]["ID"]


def test_a_second_run_for_the_same_company_is_refused(exact_sandbox, tmp_path):
    config = base_config(exact_sandbox, tmp_path, divisions=[101], write_exclusions=True)
    person = _contact(exact_sandbox, "twice@example.com")
    held = acquire("target-exactonline",
                   f"{config['base_url']}|{token_store_name(config)}", "test")
    try:
        with pytest.raises(SystemExit, match="in progress"):
            run_target(config, _exclusions("twice@example.com"))
    finally:
        held.release()
    assert _excluded(exact_sandbox, person["ID"]) is False


def test_a_spent_daily_budget_stops_the_run_with_one_line(exact_sandbox_factory, tmp_path):
    sandbox = exact_sandbox_factory(daily_limit=1)
    person = _contact(sandbox, "budget@example.com")
    config = base_config(sandbox, tmp_path, divisions=[101], write_exclusions=True)
    with pytest.raises(SystemExit, match="daily call limit"):
        run_target(config, [*_exclusions("budget@example.com"),
                            {"type": "STATE", "value": {"x": 1}}])
    assert _excluded(sandbox, person["ID"]) is False
