"""The way back through Meltano: `meltano run mailchimp-to-exactonline` (tap-mailchimp →
target-exactonline) against both sandboxes, with the forward job in between."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from e2e_pipeline import Pipeline

WAY_BACK = "mailchimp-to-exactonline"
FORWARD = "exactonline-to-mailchimp"


def _way_back_env(pipeline: Pipeline, workdir: Path) -> None:
    exact, mailchimp = pipeline.exact, pipeline.mailchimp
    pipeline.env.update({
        "TAP_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TAP_MAILCHIMP_LOGIN_URL": mailchimp.url,
        "TAP_MAILCHIMP_LIST_ID": mailchimp.list_id,
        "TAP_MAILCHIMP_SECRET_STORE_PATH": str(workdir / "secrets"),
        "TARGET_EXACTONLINE_BASE_URL": exact.base_url("nl"),
        "TARGET_EXACTONLINE_CLIENT_ID": exact.client_id,
        "TARGET_EXACTONLINE_ALL_DIVISIONS": "true",
        "TARGET_EXACTONLINE_TOKEN_STORE_PATH": str(workdir / "secrets"),
        "TARGET_EXACTONLINE_AUDIT_STORE_URL": f"sqlite:///{workdir / 'exact-audit.sqlite'}",
        "TARGET_EXACTONLINE_WRITE_EXCLUSIONS": "true",
        "TARGET_EXACTONLINE_CREATE_COST_CENTERS": "true",
    })


@pytest.fixture
def both_ways(pipeline: Pipeline) -> Pipeline:
    _way_back_env(pipeline, pipeline.workdir)
    return pipeline


def _job(pipeline: Pipeline, name: str) -> None:
    pipeline.meltano("run", name)


def _exact_writes(pipeline: Pipeline) -> list[str]:
    return [f"{c['method']} {c['endpoint']}" for c in pipeline.exact.calls()["calls"]
            if c["method"] != "GET" and "oauth2" not in c["endpoint"]]


def _segments(pipeline: Pipeline) -> dict[str, int]:
    mc = pipeline.mailchimp
    answer = requests.get(f"{mc.api_base}/lists/{mc.list_id}/segments", timeout=10,
                          params={"type": "static", "count": 1000}, auth=("x", mc.api_key))
    assert answer.status_code == 200, answer.text
    names: dict[str, int] = {}
    for segment in answer.json()["segments"]:
        names[segment["name"]] = names.get(segment["name"], 0) + 1
    return names


def _contacts_with(pipeline: Pipeline, email: str) -> list[dict[str, Any]]:
    return [c for c in pipeline.exact.rows("Contacts")
            if email in {str(c.get("Email") or "").lower(), str(c.get("BusinessEmail") or
                                                                  "").lower()}]


def test_an_unsubscribe_in_mailchimp_excludes_the_contact_in_exact_for_good(both_ways):
    pipeline = both_ways
    _job(pipeline, FORWARD)
    members = pipeline.members()
    email = next(e for e, m in sorted(members.items()) if m["status"] != "unsubscribed"
                 and _contacts_with(pipeline, e)
                 and not any(c["IsMailingExcluded"] for c in _contacts_with(pipeline, e)))
    # The forward flow's own opt-outs (blocked accounts' contacts) are not written back.
    ours = {e for e, m in members.items() if m["status"] == "unsubscribed"}
    excluded_before = {c["ID"]: c["IsMailingExcluded"] for e in ours
                       for c in _contacts_with(pipeline, e)}
    assert excluded_before and not all(excluded_before.values())
    pipeline.mailchimp.set_member_status(email, "unsubscribed")

    pipeline.exact.reset_calls()
    _job(pipeline, WAY_BACK)  # one run of the way back
    contacts = _contacts_with(pipeline, email)
    assert contacts and all(c["IsMailingExcluded"] is True for c in contacts)
    assert _exact_writes(pipeline) == ["PUT crm/Contacts"] * len(contacts)
    assert {c["ID"]: c["IsMailingExcluded"] for e in ours
            for c in _contacts_with(pipeline, e)} == excluded_before

    _job(pipeline, FORWARD)  # the forward flow now reads the exclusion from Exact
    assert pipeline.members()[email]["status"] == "unsubscribed"

    # A second pair of runs writes nothing on either side, and nobody is re-subscribed.
    pipeline.exact.reset_calls()
    pipeline.mailchimp.reset_calls()
    _job(pipeline, WAY_BACK)
    _job(pipeline, FORWARD)
    assert _exact_writes(pipeline) == []
    assert pipeline.mailchimp_writes() == 0
    assert pipeline.members()[email]["status"] == "unsubscribed"
    assert all(c["IsMailingExcluded"] is True for c in _contacts_with(pipeline, email))


def test_a_tag_created_and_renamed_in_mailchimp_round_trips_without_churn(both_ways):
    pipeline = both_ways
    _job(pipeline, FORWARD)
    before = _segments(pipeline)
    center, older = [c for c in pipeline.exact.rows("Costcenters", 101) if c["Active"]
                     and f"CC {c['Code']} · {c['Description']} (101)" in before][:2]
    old_name = f"CC {center['Code']} · {center['Description']} (101)"
    new_name = f"CC {center['Code']} · {center['Description']} and more (101)"
    exact_name = f"CC {older['Code']} · {older['Description']} (101)"
    mailchimp_name = f"CC {older['Code']} · Renamed in Mailchimp (101)"
    mc = pipeline.mailchimp
    lists = f"{mc.api_base}/lists/{mc.list_id}/segments"
    segment_ids = {s["name"]: s["id"] for s in requests.get(
        lists, params={"type": "static", "count": 1000}, auth=("x", mc.api_key),
        timeout=10).json()["segments"]}
    mc.advance_clock(60)
    for name, renamed_to in ((old_name, new_name), (exact_name, mailchimp_name)):
        renamed = requests.patch(f"{lists}/{segment_ids[name]}", json={"name": renamed_to},
                                 auth=("x", mc.api_key), timeout=10)
        assert renamed.status_code == 200, renamed.text
    # `older`'s cost center changes in Exact after its tag was renamed (not its description,
    # so the forward flow has no new name to send): Exact's name must come back in Mailchimp.
    pipeline.exact.advance_clock(180)
    pipeline.exact.update("Costcenters", older["ID"], {"Active": True})
    created = requests.post(lists, json={"name": "CC 650 · Trade fairs (101)",
                                         "static_segment": []},
                            auth=("x", mc.api_key), timeout=10)
    assert created.status_code == 200, created.text

    _job(pipeline, WAY_BACK)
    centers = {c["Code"]: c for c in pipeline.exact.rows("Costcenters", 101)}
    assert centers[center["Code"]]["Description"] == f"{center['Description']} and more"
    assert centers["650"]["Description"] == "Trade fairs"

    assert centers[older["Code"]]["Description"] == older["Description"]
    assert _segments(pipeline).get(exact_name) == 1  # put back by the way back

    _job(pipeline, FORWARD)  # Exact now holds Mailchimp's names: nothing is renamed back
    after = _segments(pipeline)
    assert after.get(new_name) == 1 and old_name not in after
    assert after.get("CC 650 · Trade fairs (101)") == 1
    assert after.get(exact_name) == 1 and mailchimp_name not in after

    pipeline.exact.reset_calls()
    pipeline.mailchimp.reset_calls()
    _job(pipeline, WAY_BACK)
    _job(pipeline, FORWARD)
    assert _exact_writes(pipeline) == []
    assert pipeline.mailchimp_writes() == 0
    assert _segments(pipeline) == after
