"""Members: upsert rules, compliance, forgotten and fake addresses, archive, reads and listing."""

from __future__ import annotations

import hashlib

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


class Api:
    """A thin authenticated client for one sandbox list."""

    def __init__(self, sandbox: MailchimpSandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.auth = ("anystring", sandbox.api_key)
        self.members = f"{sandbox.api_base}/lists/{sandbox.list_id}/members"

    def put(self, email: str, body: dict, **params) -> requests.Response:
        return self.session.put(f"{self.members}/{md5(email)}",
                                json={"email_address": email, **body}, params=params, timeout=5)

    def get(self, email: str) -> requests.Response:
        return self.session.get(f"{self.members}/{md5(email)}", timeout=5)


@pytest.fixture
def api(mailchimp_sandbox: MailchimpSandbox) -> Api:
    return Api(mailchimp_sandbox)


def test_put_creates_with_status_if_new_and_reads_back(api: Api) -> None:
    created = api.put("Ann.Smith@Acme.nl", {"status_if_new": "subscribed",
                                            "merge_fields": {"FNAME": "Ann"}})
    assert created.status_code == 200
    body = created.json()
    assert body["id"] == md5("ann.smith@acme.nl")
    assert body["status"] == "subscribed"
    # Unset merge fields read back as "".
    assert body["merge_fields"] == {"FNAME": "Ann", "LNAME": "", "ADDRESS": "", "PHONE": ""}
    read = api.get("ann.smith@acme.nl").json()
    assert read["email_address"] == "Ann.Smith@Acme.nl"
    assert read["last_changed"] == body["last_changed"]


def test_status_if_new_does_not_touch_existing_but_status_overwrites(api: Api) -> None:
    api.put("bob@acme.nl", {"status_if_new": "transactional"})
    again = api.put("bob@acme.nl", {"status_if_new": "subscribed"})
    assert again.json()["status"] == "transactional"
    overwritten = api.put("bob@acme.nl", {"status": "subscribed"})
    assert overwritten.json()["status"] == "subscribed"


def test_put_without_any_status_for_new_member_is_refused(api: Api) -> None:
    response = api.put("carol@acme.nl", {"merge_fields": {"FNAME": "Carol"}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "status_if_new"
    assert api.get("carol@acme.nl").status_code == 404


def test_hash_must_match_email(api: Api) -> None:
    response = api.session.put(f"{api.members}/{md5('other@acme.nl')}",
                               json={"email_address": "dave@acme.nl",
                                     "status_if_new": "subscribed"}, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert api.sandbox.members() == []


@pytest.mark.parametrize("owner_status", ["unsubscribed", "cleaned"])
@pytest.mark.parametrize("requested", ["subscribed", "pending"])
def test_compliance_state(api: Api, mailchimp_sandbox: MailchimpSandbox, owner_status: str,
                          requested: str) -> None:
    api.put("erin@acme.nl", {"status_if_new": "subscribed"})
    mailchimp_sandbox.set_member_status("erin@acme.nl", owner_status)
    refused = api.put("erin@acme.nl", {"status": requested})
    assert refused.status_code == 400
    assert refused.json()["title"] == "Member In Compliance State"
    assert "erin@acme.nl" in refused.json()["detail"]
    assert mailchimp_sandbox.member("erin@acme.nl")["status"] == owner_status
    # status_if_new and other fields still work and leave the status alone.
    fine = api.put("erin@acme.nl", {"status_if_new": "subscribed",
                                    "merge_fields": {"LNAME": "E"}})
    assert fine.status_code == 200
    assert fine.json()["status"] == owner_status


def test_forgotten_email_cannot_come_back(api: Api, mailchimp_sandbox: MailchimpSandbox) -> None:
    api.put("frank@acme.nl", {"status_if_new": "subscribed"})
    erase = api.session.post(f"{api.members}/{md5('frank@acme.nl')}/actions/delete-permanent",
                             timeout=5)
    assert erase.status_code == 204
    assert api.get("frank@acme.nl").status_code == 404
    for attempt in (api.put("frank@acme.nl", {"status_if_new": "transactional"}),
                    api.session.post(api.members, json={"email_address": "frank@acme.nl",
                                                        "status": "subscribed"}, timeout=5)):
        assert attempt.status_code == 400
        assert attempt.json()["title"] == "Forgotten Email Not Subscribed"
    assert mailchimp_sandbox.members() == []


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "test@test.com", "fake@example.org",
                                   "two@@at.nl"])
def test_fake_or_malformed_email(api: Api, email: str) -> None:
    response = api.session.post(api.members, json={"email_address": email,
                                                   "status": "subscribed"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid Resource"
    assert response.json()["detail"] == (
        f"{email} looks fake or invalid, please enter a real email address.")


def test_realistic_example_addresses_are_accepted(api: Api) -> None:
    assert api.put("alice@example.com", {"status_if_new": "subscribed"}).status_code == 200


def test_post_create_and_member_exists(api: Api) -> None:
    first = api.session.post(api.members, json={"email_address": "gina@acme.nl",
                                                "status": "pending", "tags": ["VIP"]}, timeout=5)
    assert first.status_code == 200
    assert first.json()["status"] == "pending"
    assert [t["name"] for t in first.json()["tags"]] == ["VIP"]
    second = api.session.post(api.members, json={"email_address": "GINA@acme.nl",
                                                 "status": "subscribed"}, timeout=5)
    assert second.status_code == 400
    assert second.json()["title"] == "Member Exists"


def test_patch_updates_and_404s_for_unknown(api: Api) -> None:
    api.put("hank@acme.nl", {"status_if_new": "subscribed"})
    patched = api.session.patch(f"{api.members}/{md5('hank@acme.nl')}",
                                json={"merge_fields": {"LNAME": "Hill"}, "vip": True}, timeout=5)
    assert patched.status_code == 200
    assert patched.json()["merge_fields"]["LNAME"] == "Hill"
    assert patched.json()["vip"] is True
    missing = api.session.patch(f"{api.members}/{md5('nobody@acme.nl')}", json={}, timeout=5)
    assert missing.status_code == 404


def test_last_changed_moves_only_on_real_changes(api: Api,
                                                 mailchimp_sandbox: MailchimpSandbox) -> None:
    first = api.put("ida@acme.nl", {"status_if_new": "subscribed",
                                    "merge_fields": {"FNAME": "Ida"}}).json()["last_changed"]
    mailchimp_sandbox.advance_clock(5)
    same = api.put("ida@acme.nl", {"status_if_new": "subscribed",
                                   "merge_fields": {"FNAME": "Ida"}}).json()["last_changed"]
    assert same == first
    changed = api.put("ida@acme.nl", {"merge_fields": {"FNAME": "Idah"}}).json()["last_changed"]
    assert changed > first
    mailchimp_sandbox.advance_clock(5)
    mailchimp_sandbox.set_member_status("ida@acme.nl", "unsubscribed")
    assert mailchimp_sandbox.member("ida@acme.nl")["last_changed"] > changed


def test_archive_then_readd(api: Api, mailchimp_sandbox: MailchimpSandbox) -> None:
    api.put("jan@acme.nl", {"status_if_new": "subscribed"})
    assert api.session.delete(f"{api.members}/{md5('jan@acme.nl')}", timeout=5).status_code == 204
    assert api.get("jan@acme.nl").json()["status"] == "archived"
    assert api.session.delete(f"{api.members}/{md5('jan@acme.nl')}", timeout=5).status_code == 404
    listed = api.session.get(api.members, timeout=5).json()
    assert listed["total_items"] == 0
    readded = api.put("jan@acme.nl", {"status_if_new": "transactional"})
    assert readded.json()["status"] == "transactional"

    # Archiving never launders an opt-out.
    api.put("kim@acme.nl", {"status_if_new": "subscribed"})
    mailchimp_sandbox.set_member_status("kim@acme.nl", "unsubscribed")
    api.session.delete(f"{api.members}/{md5('kim@acme.nl')}", timeout=5)
    assert api.put("kim@acme.nl", {"status_if_new": "subscribed"}).json()["status"] == (
        "unsubscribed")
    api.session.delete(f"{api.members}/{md5('kim@acme.nl')}", timeout=5)
    refused = api.put("kim@acme.nl", {"status": "subscribed"})
    assert refused.json()["title"] == "Member In Compliance State"


def test_listing_paging_filters_and_fields(api: Api, mailchimp_sandbox: MailchimpSandbox) -> None:
    for index in range(5):
        api.put(f"p{index}@acme.nl", {"status_if_new": "subscribed"})
    mailchimp_sandbox.advance_clock(60)
    api.put("p3@acme.nl", {"merge_fields": {"FNAME": "Three"}})
    mailchimp_sandbox.set_member_status("p4@acme.nl", "unsubscribed")
    since = mailchimp_sandbox.member("p3@acme.nl")["last_changed"]

    page = api.session.get(api.members, params={"count": 2, "offset": 1}, timeout=5).json()
    assert page["total_items"] == 5
    assert [m["email_address"] for m in page["members"]] == ["p1@acme.nl", "p2@acme.nl"]

    changed = api.session.get(api.members, params={"since_last_changed": since}, timeout=5)
    assert sorted(m["email_address"] for m in changed.json()["members"]) == [
        "p3@acme.nl", "p4@acme.nl"]

    unsubscribed = api.session.get(api.members, params={"status": "unsubscribed"}, timeout=5)
    assert [m["email_address"] for m in unsubscribed.json()["members"]] == ["p4@acme.nl"]

    slim = api.session.get(api.members, params={
        "fields": "members.email_address,members.status,total_items", "count": 1}, timeout=5)
    assert slim.json() == {"members": [{"email_address": "p0@acme.nl", "status": "subscribed"}],
                           "total_items": 5}


def test_sandbox_dump_includes_archived(api: Api, mailchimp_sandbox: MailchimpSandbox) -> None:
    api.put("lou@acme.nl", {"status_if_new": "subscribed", "merge_fields": {"FNAME": "Lou"}})
    api.session.delete(f"{api.members}/{md5('lou@acme.nl')}", timeout=5)
    dump = requests.get(f"{mailchimp_sandbox.url}/_sandbox/lists/{mailchimp_sandbox.list_id}"
                        "/members", timeout=5).json()
    assert [(m["email_address"], m["status"], m["merge_fields"]) for m in dump["members"]] == [
        ("lou@acme.nl", "archived", {"FNAME": "Lou"})]
    status = requests.post(
        f"{mailchimp_sandbox.url}/_sandbox/lists/{mailchimp_sandbox.list_id}/members/"
        f"{md5('lou@acme.nl')}/status", json={"status": "cleaned"}, timeout=5)
    assert status.json()["status"] == "cleaned"


def test_bad_json_is_a_clear_error(api: Api) -> None:
    response = api.session.put(f"{api.members}/{md5('x@acme.nl')}", data="{not json",
                               headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["title"] == "JSON Parse Error"


def test_patch_changes_email_address(api: Api, mailchimp_sandbox: MailchimpSandbox) -> None:
    api.put("old@acme.nl", {"status_if_new": "subscribed", "merge_fields": {"FNAME": "O"}})
    api.put("taken@acme.nl", {"status_if_new": "subscribed"})
    moved = api.session.patch(f"{api.members}/{md5('old@acme.nl')}",
                              json={"email_address": "new@acme.nl"}, timeout=5)
    assert moved.status_code == 200
    assert moved.json()["id"] == md5("new@acme.nl")
    assert api.get("old@acme.nl").status_code == 404
    assert api.get("new@acme.nl").json()["merge_fields"]["FNAME"] == "O"
    clash = api.session.patch(f"{api.members}/{md5('new@acme.nl')}",
                              json={"email_address": "taken@acme.nl"}, timeout=5)
    assert clash.status_code == 400 and clash.json()["title"] == "Member Exists"


def test_exclude_fields(api: Api) -> None:
    api.put("q@acme.nl", {"status_if_new": "subscribed"})
    body = api.session.get(api.members, params={"exclude_fields": "members._links,_links,"
                                                "members.merge_fields"}, timeout=5).json()
    assert "_links" not in body
    assert "merge_fields" not in body["members"][0] and "status" in body["members"][0]
