"""Merge field definitions and the validation of member values against them."""

from __future__ import annotations

import hashlib

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox
from exactmc_sandbox.mailchimp.clock import Clock
from exactmc_sandbox.mailchimp.state import AccountState, MergeField


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


@pytest.fixture
def session(mailchimp_sandbox: MailchimpSandbox) -> requests.Session:
    session = requests.Session()
    session.auth = ("u", mailchimp_sandbox.api_key)
    return session


@pytest.fixture
def lists_url(mailchimp_sandbox: MailchimpSandbox) -> str:
    return f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}"


def put_member(session: requests.Session, lists_url: str, email: str, merge_fields: dict,
               **params) -> requests.Response:
    return session.put(f"{lists_url}/members/{md5(email)}", params=params, timeout=5,
                       json={"email_address": email, "status_if_new": "subscribed",
                             "merge_fields": merge_fields})


def test_default_merge_fields(session: requests.Session, lists_url: str) -> None:
    body = session.get(f"{lists_url}/merge-fields", timeout=5).json()
    assert [(f["tag"], f["type"]) for f in body["merge_fields"]] == [
        ("FNAME", "text"), ("LNAME", "text"), ("ADDRESS", "address"), ("PHONE", "phone")]
    assert body["total_items"] == 4


def test_create_patch_delete_merge_field(session: requests.Session, lists_url: str) -> None:
    created = session.post(f"{lists_url}/merge-fields", timeout=5,
                           json={"tag": "CUSTNO", "name": "Customer number", "type": "text"})
    assert created.status_code == 200
    merge_id = created.json()["merge_id"]
    duplicate = session.post(f"{lists_url}/merge-fields", timeout=5,
                             json={"tag": "CUSTNO", "name": "Again", "type": "text"})
    assert duplicate.status_code == 400
    for bad_tag in ("TOOLONGTAG11", "lower"):
        bad = session.post(f"{lists_url}/merge-fields", timeout=5,
                           json={"tag": bad_tag, "name": "x", "type": "text"})
        if bad_tag == "lower":  # tags are upper-cased, as Mailchimp does
            assert bad.status_code == 200 and bad.json()["tag"] == "LOWER"
        else:
            assert bad.status_code == 400
    bad_type = session.post(f"{lists_url}/merge-fields", timeout=5,
                            json={"tag": "X", "name": "x", "type": "colour"})
    assert bad_type.status_code == 400

    patched = session.patch(f"{lists_url}/merge-fields/{merge_id}", json={"name": "Cust #"},
                            timeout=5)
    assert patched.json()["name"] == "Cust #"
    assert put_member(session, lists_url, "a@acme.nl", {"CUSTNO": "C-1"}).status_code == 200
    assert session.delete(f"{lists_url}/merge-fields/{merge_id}", timeout=5).status_code == 204
    assert session.get(f"{lists_url}/merge-fields/{merge_id}", timeout=5).status_code == 404
    member = session.get(f"{lists_url}/members/{md5('a@acme.nl')}", timeout=5).json()
    assert "CUSTNO" not in member["merge_fields"]


def test_text_longer_than_255_is_invalid(session: requests.Session, lists_url: str,
                                         mailchimp_sandbox: MailchimpSandbox) -> None:
    response = put_member(session, lists_url, "b@acme.nl", {"FNAME": "x" * 256})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Your merge fields were invalid."
    assert body["errors"][0]["field"] == "FNAME"
    assert mailchimp_sandbox.members() == []
    assert put_member(session, lists_url, "b@acme.nl", {"FNAME": "x" * 255}).status_code == 200


def test_address_needs_addr1_city_state_zip(session: requests.Session, lists_url: str) -> None:
    incomplete = put_member(session, lists_url, "c@acme.nl",
                            {"ADDRESS": {"addr1": "Main 1", "city": "Delft", "zip": "2611"}})
    assert incomplete.status_code == 400
    assert incomplete.json()["errors"][0]["field"] == "ADDRESS"
    complete = put_member(session, lists_url, "c@acme.nl", {"ADDRESS": {
        "addr1": "Main 1", "city": "Delft", "state": "ZH", "zip": "2611", "country": "NL"}})
    assert complete.status_code == 200
    assert complete.json()["merge_fields"]["ADDRESS"] == {
        "addr1": "Main 1", "addr2": "", "city": "Delft", "state": "ZH", "zip": "2611",
        "country": "NL"}


def test_unknown_merge_tag_is_invalid(session: requests.Session, lists_url: str) -> None:
    response = put_member(session, lists_url, "d@acme.nl", {"NOPE": "x"})
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "NOPE", "message": "Merge field NOPE does not exist"}]


def test_required_fields_and_skip_merge_validation(session: requests.Session,
                                                   lists_url: str) -> None:
    session.post(f"{lists_url}/merge-fields", timeout=5,
                 json={"tag": "COMPANY", "name": "Company", "type": "text", "required": True})
    refused = put_member(session, lists_url, "e@acme.nl", {"FNAME": "E"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "COMPANY"
    skipped = put_member(session, lists_url, "e@acme.nl", {"FNAME": "E"},
                         skip_merge_validation="true")
    assert skipped.status_code == 200
    assert skipped.json()["merge_fields"]["COMPANY"] == ""


def test_merge_fields_by_tag_follow_renames_and_deletes() -> None:
    """Looked up by tag through a remembered index (issue 9) that never answers stale."""
    audience = AccountState(Clock()).add_list("L", "List")
    fname = audience.merge_field_by_tag("FNAME")
    assert fname is not None and audience.merge_field_by_tag("FNAME") is fname
    fname.tag = "FIRST"  # renamed in place
    assert audience.merge_field_by_tag("FNAME") is None
    assert audience.merge_field_by_tag("FIRST") is fname
    del audience.merge_fields[fname.merge_id]
    assert audience.merge_field_by_tag("FIRST") is None
    audience.merge_fields[9] = again = MergeField(9, "FIRST", "First", "text")
    assert audience.merge_field_by_tag("FIRST") is again
    assert audience.merge_field_by_tag("NOPE") is None
