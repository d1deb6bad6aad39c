"""Tags: member tags, tag search, and static segments (which is what tags are)."""

from __future__ import annotations

import hashlib

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


class Api:
    def __init__(self, sandbox: MailchimpSandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.auth = ("u", sandbox.api_key)
        self.base = f"{sandbox.api_base}/lists/{sandbox.list_id}"

    def add(self, *emails: str) -> None:
        for email in emails:
            self.session.put(f"{self.base}/members/{md5(email)}", timeout=5,
                             json={"email_address": email, "status_if_new": "subscribed"})

    def tag(self, email: str, *changes: tuple[str, str]) -> requests.Response:
        return self.session.post(
            f"{self.base}/members/{md5(email)}/tags", timeout=5,
            json={"tags": [{"name": n, "status": s} for n, s in changes], "is_syncing": True})

    def tags_of(self, email: str) -> list[str]:
        return sorted(self.sandbox.member(email)["tags"])


@pytest.fixture
def api(mailchimp_sandbox: MailchimpSandbox) -> Api:
    return Api(mailchimp_sandbox)


def test_member_tags_add_remove_and_read(api: Api) -> None:
    api.add("a@acme.nl")
    response = api.tag("a@acme.nl", ("Customer", "active"), ("Region NL", "active"))
    assert response.status_code == 204
    assert api.tags_of("a@acme.nl") == ["Customer", "Region NL"]
    read = api.session.get(f"{api.base}/members/{md5('a@acme.nl')}/tags", timeout=5).json()
    assert sorted(t["name"] for t in read["tags"]) == ["Customer", "Region NL"]
    assert all(t["date_added"] for t in read["tags"])
    api.tag("a@acme.nl", ("Customer", "inactive"), ("Never existed", "inactive"))
    assert api.tags_of("a@acme.nl") == ["Region NL"]
    search = api.session.get(f"{api.base}/tag-search", params={"name": "reg"}, timeout=5).json()
    assert [t["name"] for t in search["tags"]] == ["Region NL"]
    assert "Never existed" not in [t["name"] for t in api.session.get(
        f"{api.base}/tag-search", timeout=5).json()["tags"]]


def test_member_tags_errors(api: Api) -> None:
    assert api.tag("nobody@acme.nl", ("X", "active")).status_code == 404
    api.add("b@acme.nl")
    bad = api.tag("b@acme.nl", ("X", "on"))
    assert bad.status_code == 400
    assert api.tags_of("b@acme.nl") == []


def test_static_segment_create_batch_add_remove(api: Api) -> None:
    api.add("c@acme.nl", "d@acme.nl", "e@acme.nl")
    created = api.session.post(f"{api.base}/segments", timeout=5,
                               json={"name": "Gold", "static_segment": ["c@acme.nl"]})
    assert created.status_code == 200
    segment = created.json()
    assert segment["type"] == "static" and segment["member_count"] == 1
    assert api.tags_of("c@acme.nl") == ["Gold"]

    result = api.session.post(f"{api.base}/segments/{segment['id']}", timeout=5, json={
        "members_to_add": ["d@acme.nl", "e@acme.nl", "stranger@acme.nl"],
        "members_to_remove": ["c@acme.nl"]}).json()
    assert result["total_added"] == 2 and result["total_removed"] == 1
    assert result["error_count"] == 1
    assert result["errors"][0]["email_addresses"] == ["stranger@acme.nl"]
    assert {m["email_address"] for m in result["members_added"]} == {"d@acme.nl", "e@acme.nl"}
    members = api.session.get(f"{api.base}/segments/{segment['id']}/members", timeout=5).json()
    assert {m["email_address"] for m in members["members"]} == {"d@acme.nl", "e@acme.nl"}

    too_many = api.session.post(f"{api.base}/segments/{segment['id']}", timeout=5, json={
        "members_to_add": [f"x{i}@acme.nl" for i in range(501)]})
    assert too_many.status_code == 400

    duplicate = api.session.post(f"{api.base}/segments", json={"name": "gold",
                                                               "static_segment": []}, timeout=5)
    assert duplicate.status_code == 400


def test_rename_and_delete_segment_changes_every_member(api: Api) -> None:
    api.add("f@acme.nl", "g@acme.nl")
    api.tag("f@acme.nl", ("Old name", "active"))
    api.tag("g@acme.nl", ("Old name", "active"))
    segment_id = api.session.get(f"{api.base}/tag-search", params={"name": "Old"},
                                 timeout=5).json()["tags"][0]["id"]
    renamed = api.session.patch(f"{api.base}/segments/{segment_id}", json={"name": "New name"},
                                timeout=5)
    assert renamed.json()["name"] == "New name"
    assert api.tags_of("f@acme.nl") == api.tags_of("g@acme.nl") == ["New name"]

    listed = api.session.get(f"{api.base}/segments", timeout=5).json()
    assert [(s["id"], s["member_count"]) for s in listed["segments"]] == [(segment_id, 2)]

    assert api.session.delete(f"{api.base}/segments/{segment_id}", timeout=5).status_code == 204
    assert api.tags_of("f@acme.nl") == api.tags_of("g@acme.nl") == []
    assert api.session.get(f"{api.base}/segments/{segment_id}", timeout=5).status_code == 404


def test_patch_static_segment_replaces_members(api: Api) -> None:
    api.add("h@acme.nl", "i@acme.nl")
    segment = api.session.post(f"{api.base}/segments", timeout=5,
                               json={"name": "S", "static_segment": ["h@acme.nl"]}).json()
    api.session.patch(f"{api.base}/segments/{segment['id']}", json={"static_segment":
                                                                   ["i@acme.nl"]}, timeout=5)
    assert api.tags_of("h@acme.nl") == [] and api.tags_of("i@acme.nl") == ["S"]


def test_tagging_bumps_last_changed(api: Api, mailchimp_sandbox: MailchimpSandbox) -> None:
    api.add("j@acme.nl")
    before = mailchimp_sandbox.member("j@acme.nl")["last_changed"]
    mailchimp_sandbox.advance_clock(3)
    api.tag("j@acme.nl", ("T", "active"))
    after = mailchimp_sandbox.member("j@acme.nl")["last_changed"]
    assert after > before
    mailchimp_sandbox.advance_clock(3)
    api.tag("j@acme.nl", ("T", "active"))  # no change, no bump
    assert mailchimp_sandbox.member("j@acme.nl")["last_changed"] == after
