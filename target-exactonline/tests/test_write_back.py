"""target-exactonline against the Exact sandbox over real HTTP: what Exact ends up holding."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone

import pytest
import requests
from secret_store import SecretStore
from target_exactonline.testing import audit_rows, base_config, run_target, stream

NOW = datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _writes(sandbox) -> list[str]:
    return [f"{c['method']} {c['endpoint']}" for c in sandbox.calls()["calls"]
            if c["method"] in {"PUT", "POST", "DELETE", "PATCH"} and "oauth2" not in c["endpoint"]]


def _mailchimp_writes(sandbox) -> dict[str, int]:
    return {k: n for k, n in sandbox.calls()["by_endpoint"].items() if not k.startswith("GET")}


def _contact(sandbox, division: int, **fields):
    account = sandbox.rows("Accounts", division)[0]
    return sandbox.create("Contacts", {"Division": division, "Account": account["ID"],
                                       "LastName": "Opt-out", **fields})


def _contact_now(sandbox, key: str):
    return next(r for r in sandbox.rows("Contacts") if r["ID"] == key)


def _exclusion(email: str, status: str = "unsubscribed", source: str = "webhook") -> dict:
    return {"email": email, "status": status, "changed_at": _iso(NOW), "source": source,
            "list_id": "demo"}


@pytest.fixture
def people(exact_sandbox):
    """One address on three contacts in two divisions (Email, BusinessEmail, any case)."""
    return {
        "a": _contact(exact_sandbox, 101, Email="ann.o'neil@example.com"),
        "b": _contact(exact_sandbox, 102, Email="private@example.com",
                      BusinessEmail="Ann.O'Neil@Example.com"),
        "c": _contact(exact_sandbox, 101, Email="ANN.O'NEIL@example.com"),
        "other": _contact(exact_sandbox, 101, Email="someone@example.com"),
    }


def test_exclusion_written_on_every_matching_contact_in_every_division_once(
        exact_sandbox, tmp_path, people):
    config = base_config(exact_sandbox, tmp_path, divisions=[101, 102], write_exclusions=True)
    messages = stream("mailing_exclusions", [_exclusion("ann.o'neil@example.com"),
                                             _exclusion("nobody@example.com", "cleaned")])
    exact_sandbox.reset_calls()
    run_target(config, messages)

    for key in ("a", "b", "c"):
        assert _contact_now(exact_sandbox, people[key]["ID"])["IsMailingExcluded"] is True
    assert _contact_now(exact_sandbox, people["other"]["ID"])["IsMailingExcluded"] is False
    assert sorted(_writes(exact_sandbox)) == ["PUT crm/Contacts"] * 3
    # One lookup per division for the whole batch, not one per address.
    lookups = [c for c in exact_sandbox.calls()["calls"]
               if c["method"] == "GET" and c["endpoint"] == "crm/Contacts"]
    assert len(lookups) == 2
    written = audit_rows(config, outcome="written")
    assert sorted(r["entity_key"] for r in written) == sorted(
        people[k]["ID"] for k in ("a", "b", "c"))
    assert {r["division"] for r in written} == {101, 102}
    assert [r["record_key"] for r in audit_rows(config, outcome="reported")] == [
        "nobody@example.com", "nobody@example.com"]  # reported in each division
    assert stat.S_IMODE(os.stat(tmp_path / "audit.sqlite").st_mode) == 0o600

    # The same input again (or our own change coming back): nothing is written.
    exact_sandbox.reset_calls()
    run_target(config, messages)
    assert _writes(exact_sandbox) == []
    second = audit_rows(config)[-4:]
    assert {r["outcome"] for r in second} == {"unchanged", "reported"}


def test_no_exclusion_written_when_disabled(exact_sandbox, tmp_path, people):
    config = base_config(exact_sandbox, tmp_path, all_divisions=True)  # write_exclusions off
    exact_sandbox.reset_calls()
    run_target(config, stream("mailing_exclusions", [_exclusion("ann.o'neil@example.com")]))
    assert _writes(exact_sandbox) == []
    for key in ("a", "b", "c"):
        assert _contact_now(exact_sandbox, people[key]["ID"]) == people[key]
    reported = [r for r in audit_rows(config, outcome="reported") if r["entity_key"]]
    assert sorted(r["entity_key"] for r in reported) == sorted(
        people[k]["ID"] for k in ("a", "b", "c"))
    assert all("write_exclusions is off" in r["reason"] for r in reported)


def test_already_excluded_contact_and_other_statuses_are_not_written(exact_sandbox, tmp_path):
    done = _contact(exact_sandbox, 101, Email="done@example.com", IsMailingExcluded=True)
    kept = _contact(exact_sandbox, 101, Email="kept@example.com")
    config = base_config(exact_sandbox, tmp_path, divisions=[101], write_exclusions=True)
    exact_sandbox.reset_calls()
    run_target(config, stream("mailing_exclusions", [
        _exclusion("done@example.com"), _exclusion("kept@example.com", status="subscribed"),
        {"email": "", "status": "unsubscribed"}]))
    assert _writes(exact_sandbox) == []
    assert _contact_now(exact_sandbox, done["ID"]) == done
    assert _contact_now(exact_sandbox, kept["ID"]) == kept
    outcomes = {r["record_key"]: r["outcome"] for r in audit_rows(config)}
    assert outcomes == {"done@example.com": "unchanged", "kept@example.com": "ignored",
                        "?": "ignored"}


def _tag(name: str, updated_at: datetime, segment_id: int = 1) -> dict:
    return {"segment_id": segment_id, "name": name, "member_count": 3,
            "created_at": _iso(updated_at - timedelta(days=1)), "updated_at": _iso(updated_at),
            "list_id": "demo"}


def _center(sandbox, division: int, code: str):
    found = [r for r in sandbox.rows("Costcenters", division) if r["Code"] == code]
    return found[0] if found else None


def test_tag_renamed_in_mailchimp_later_renames_the_cost_center_once(exact_sandbox, tmp_path):
    before = _center(exact_sandbox, 101, "200")
    config = base_config(exact_sandbox, tmp_path, divisions=[101, 102])
    messages = stream("tags", [_tag("CC 200 · Service & Repairs (101)", NOW + timedelta(seconds=5)),
                               _tag("CC 100 · Sales (101)", NOW, segment_id=2)])
    exact_sandbox.reset_calls()
    run_target(config, messages)
    after = _center(exact_sandbox, 101, "200")
    assert after["Description"] == "Service & Repairs" and after["Modified"] > before["Modified"]
    assert _center(exact_sandbox, 102, "200")["Description"] == "Service"  # another division
    assert _writes(exact_sandbox) == ["PUT hrm/Costcenters"]
    assert [r["outcome"] for r in audit_rows(config, operation="rename_cost_center")] == [
        "unchanged", "written"]  # codes in order: 100 is already named so, 200 renamed

    exact_sandbox.reset_calls()
    run_target(config, messages)
    assert _writes(exact_sandbox) == []
    assert _center(exact_sandbox, 101, "200") == after


def test_tag_renamed_before_exact_changed_gets_exacts_name_back_in_mailchimp(
        exact_sandbox, mailchimp_sandbox, tmp_path):
    before = _center(exact_sandbox, 101, "300")
    config = base_config(exact_sandbox, tmp_path, divisions=[101], restore_tag_names=False,
                         mailchimp_base_url=mailchimp_sandbox.api_base)
    SecretStore(config["token_store_path"], config["token_store_key"]).write(
        "mailchimp", {"api_key": mailchimp_sandbox.api_key})
    segments = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/segments"
    auth = ("x", mailchimp_sandbox.api_key)
    segment = requests.post(segments, json={"name": "CC 300 · Old name (101)",
                                            "static_segment": []}, auth=auth, timeout=10).json()
    old = datetime(2001, 1, 1, tzinfo=timezone.utc)
    tag = {**_tag("CC 300 · Old name (101)", old, segment["id"]),
           "list_id": mailchimp_sandbox.list_id}

    def name_in_mailchimp() -> str:
        return requests.get(f"{segments}/{segment['id']}", auth=auth, timeout=10).json()["name"]

    exact_sandbox.reset_calls()
    run_target(config, stream("tags", [tag]))  # restore_tag_names off: only reported
    assert name_in_mailchimp() == "CC 300 · Old name (101)"
    [row] = audit_rows(config)
    assert (row["operation"], row["outcome"]) == ("restore_tag_name", "reported")

    mailchimp_sandbox.reset_calls()
    config["restore_tag_names"] = True
    run_target(config, stream("tags", [tag]))
    exact_name = f"CC 300 · {before['Description']} (101)"
    assert name_in_mailchimp() == exact_name
    assert _mailchimp_writes(mailchimp_sandbox) == {"PATCH /lists/*/segments/*": 1}
    assert audit_rows(config)[-1]["outcome"] == "written"
    # Exact is left alone; the renamed tag coming back is equal: nothing is written anywhere.
    mailchimp_sandbox.reset_calls()
    run_target(config, stream("tags", [{**tag, "name": exact_name,
                                        "updated_at": _iso(NOW)}]))
    assert _writes(exact_sandbox) == []
    assert _center(exact_sandbox, 101, "300") == before
    assert _mailchimp_writes(mailchimp_sandbox) == {}
    assert audit_rows(config)[-1]["outcome"] == "unchanged"


def test_unknown_cost_center_tag_reported_then_created_when_enabled(exact_sandbox, tmp_path):
    messages = stream("tags", [_tag("CC 555 · Events (101)", NOW),
                               _tag("VIP customers", NOW, segment_id=9),
                               _tag("CC 556 · Elsewhere (999)", NOW, segment_id=10)])
    config = base_config(exact_sandbox, tmp_path, divisions=[101])
    exact_sandbox.reset_calls()
    run_target(config, messages)
    assert _writes(exact_sandbox) == [] and _center(exact_sandbox, 101, "555") is None
    outcomes = {r["record_key"]: (r["operation"], r["outcome"]) for r in audit_rows(config)}
    assert outcomes == {"1": ("create_cost_center", "reported"),
                        "9": ("cost_center", "ignored"), "10": ("cost_center", "ignored")}

    config["create_cost_centers"] = True
    run_target(config, messages)
    created = _center(exact_sandbox, 101, "555")
    assert created["Description"] == "Events"
    assert _writes(exact_sandbox) == ["POST hrm/Costcenters"]
    [row] = audit_rows(config, outcome="written")
    assert row["entity_key"] == created["ID"] and row["operation"] == "create_cost_center"

    exact_sandbox.reset_calls()
    run_target(config, messages)
    assert _writes(exact_sandbox) == []


def test_custom_template_and_email_changes_are_only_reported(exact_sandbox, tmp_path):
    config = base_config(exact_sandbox, tmp_path, divisions=[101],
                         tag_name_template="{description} [{code}]", create_cost_centers=True)
    exact_sandbox.reset_calls()
    run_target(config, [
        *stream("tags", [_tag("Trade fairs [TF1]", NOW)]),
        *stream("email_changes", [{"old_email": "a@example.com", "new_email": "b@example.com",
                                   "fired_at": _iso(NOW), "list_id": "demo"}]),
    ])
    assert _center(exact_sandbox, 101, "TF1")["Description"] == "Trade fairs"
    assert _writes(exact_sandbox) == ["POST hrm/Costcenters"]
    [change] = audit_rows(config, stream="email_changes")
    assert change["outcome"] == "reported" and change["record_key"] == "a@example.com→b@example.com"


def test_many_addresses_are_looked_up_in_few_calls_of_short_urls(exact_sandbox, tmp_path):
    from target_exactonline.client import query_string
    from target_exactonline.lookups import MAX_URL, batched_filters

    # 40: the writes stay under the sandbox's 60 calls a minute (no wait for the reset).
    emails = [f"person.{n:03d}.with-a-longer-name@example-company.com" for n in range(40)]
    base = f"{exact_sandbox.base_url()}/api/v1/101/crm/Contacts"
    batches = list(batched_filters(base, ("Email", "BusinessEmail"), emails, "ID,Email"))
    assert [e for values, _ in batches for e in values] == emails
    assert len(batches) > 1
    for _, where in batches:
        url = f"{base}?{query_string({'$filter': where, '$select': 'ID,Email'})}"
        assert len(url) <= MAX_URL < 2000

    people = [_contact(exact_sandbox, 101, Email=e) for e in emails]
    config = base_config(exact_sandbox, tmp_path, divisions=[101], write_exclusions=True)
    exact_sandbox.reset_calls()
    run_target(config, stream("mailing_exclusions", [_exclusion(e) for e in emails]))
    assert all(_contact_now(exact_sandbox, p["ID"])["IsMailingExcluded"] for p in people)
    lookups = [c for c in exact_sandbox.calls()["calls"]
               if c["method"] == "GET" and c["endpoint"] == "crm/Contacts"]
    assert 1 < len(lookups) < len(emails) / 5
