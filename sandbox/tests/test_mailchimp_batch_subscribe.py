"""`POST /lists/{id}`: batch subscribe/update, its response shape and limits."""

from __future__ import annotations

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


@pytest.fixture
def post(mailchimp_sandbox: MailchimpSandbox):
    session = requests.Session()
    session.auth = ("u", mailchimp_sandbox.api_key)
    url = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}"

    def send(body: dict, **params) -> requests.Response:
        return session.post(url, json=body, params=params, timeout=10)

    return send


def test_response_shape(post, mailchimp_sandbox: MailchimpSandbox) -> None:
    response = post({"members": [
        {"email_address": "a@acme.nl", "status_if_new": "subscribed",
         "merge_fields": {"FNAME": "A"}},
        {"email_address": "b@acme.nl", "status": "transactional"},
        {"email_address": "test@test.com", "status": "subscribed"},
    ], "update_existing": True})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"new_members", "updated_members", "errors", "total_created",
                         "total_updated", "error_count", "_links"}
    assert [m["email_address"] for m in body["new_members"]] == ["a@acme.nl", "b@acme.nl"]
    assert body["total_created"] == 2 and body["total_updated"] == 0
    assert body["error_count"] == 1
    assert body["errors"] == [{
        "email_address": "test@test.com",
        "error": "test@test.com looks fake or invalid, please enter a real email address.",
        "error_code": "ERROR_GENERIC", "field": "", "field_message": ""}]
    assert {m["email_address"]: m["status"] for m in mailchimp_sandbox.members()} == {
        "a@acme.nl": "subscribed", "b@acme.nl": "transactional"}


def test_update_existing_and_status_rules(post, mailchimp_sandbox: MailchimpSandbox) -> None:
    post({"members": [{"email_address": "c@acme.nl", "status_if_new": "subscribed"},
                      {"email_address": "d@acme.nl", "status_if_new": "subscribed"}]})
    mailchimp_sandbox.set_member_status("d@acme.nl", "unsubscribed")

    without = post({"members": [{"email_address": "c@acme.nl", "status_if_new": "pending"}]})
    assert without.json()["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"

    body = post({"members": [
        {"email_address": "c@acme.nl", "status_if_new": "pending",
         "merge_fields": {"LNAME": "C"}},
        {"email_address": "d@acme.nl", "status": "subscribed"},
        {"email_address": "e@acme.nl", "merge_fields": {"ADDRESS": {"addr1": "x"}},
         "status_if_new": "subscribed"},
    ], "update_existing": True}).json()
    assert [m["email_address"] for m in body["updated_members"]] == ["c@acme.nl"]
    assert body["updated_members"][0]["status"] == "subscribed"  # status_if_new ignored
    errors = {e["email_address"]: e for e in body["errors"]}
    assert "compliance state" in errors["d@acme.nl"]["error"]
    assert errors["e@acme.nl"]["error"] == "Your merge fields were invalid."
    assert errors["e@acme.nl"]["field"] == "ADDRESS"
    assert mailchimp_sandbox.member("d@acme.nl")["status"] == "unsubscribed"
    assert mailchimp_sandbox.member("e@acme.nl") is None


def test_more_than_500_members_is_refused(post, mailchimp_sandbox: MailchimpSandbox) -> None:
    members = [{"email_address": f"m{i}@acme.nl", "status_if_new": "subscribed"}
               for i in range(501)]
    refused = post({"members": members})
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert mailchimp_sandbox.members() == []
    accepted = post({"members": members[:500]})
    assert accepted.json()["total_created"] == 500


def test_tags_are_added_or_synced(post, mailchimp_sandbox: MailchimpSandbox) -> None:
    post({"members": [{"email_address": "t@acme.nl", "status_if_new": "subscribed",
                       "tags": ["Customer", "NL"]}]})
    assert sorted(mailchimp_sandbox.member("t@acme.nl")["tags"]) == ["Customer", "NL"]
    post({"members": [{"email_address": "t@acme.nl", "tags": ["BE"]}], "update_existing": True})
    assert sorted(mailchimp_sandbox.member("t@acme.nl")["tags"]) == ["BE", "Customer", "NL"]
    post({"members": [{"email_address": "t@acme.nl", "tags": ["BE"]}], "update_existing": True,
          "sync_tags": True})
    assert mailchimp_sandbox.member("t@acme.nl")["tags"] == ["BE"]


def test_duplicates_and_merge_validation_flags(post, mailchimp_sandbox: MailchimpSandbox,
                                               ) -> None:
    dup = [{"email_address": "x@acme.nl", "status_if_new": "subscribed"},
           {"email_address": "X@acme.nl", "status_if_new": "subscribed"}]
    checked = post({"members": dup}).json()
    assert checked["total_created"] == 1
    assert checked["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    skipped = post({"members": [{"email_address": "y@acme.nl", "status_if_new": "subscribed"},
                                {"email_address": "y@acme.nl", "status": "pending"}]},
                   skip_duplicate_check="true").json()
    assert skipped["total_created"] == 1 and skipped["error_count"] == 0
    assert mailchimp_sandbox.member("y@acme.nl")["status"] == "subscribed"

    requests.post(f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/merge-fields",
                  auth=("u", mailchimp_sandbox.api_key), timeout=5,
                  json={"tag": "COMPANY", "name": "Company", "type": "text", "required": True})
    strict = post({"members": [{"email_address": "z@acme.nl", "status_if_new": "subscribed"}]})
    assert strict.json()["errors"][0]["field"] == "COMPANY"
    lenient = post({"members": [{"email_address": "z@acme.nl", "status_if_new": "subscribed"}]},
                   skip_merge_validation="true")
    assert lenient.json()["total_created"] == 1


def test_not_a_members_array(post) -> None:
    response = post({"members": {"email_address": "a@acme.nl"}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "members"


def test_bad_tag_refuses_that_member_only(post, mailchimp_sandbox: MailchimpSandbox) -> None:
    body = post({"members": [
        {"email_address": "ok@acme.nl", "status_if_new": "subscribed", "tags": ["Fine"]},
        {"email_address": "bad@acme.nl", "status_if_new": "subscribed", "tags": ["x" * 101]},
    ]}).json()
    assert body["total_created"] == 1 and body["error_count"] == 1
    assert body["errors"][0]["email_address"] == "bad@acme.nl"
    assert mailchimp_sandbox.member("bad@acme.nl") is None
