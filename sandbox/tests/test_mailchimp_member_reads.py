"""`GET /lists/{id}/members` at scale (issue 9: ~400 such reads at 100k accounts): a `fields`
selection builds only what it selects, a `since_last_changed` read costs its page and its
matches, not the audience; the answers are exactly the full answer filtered (as before).
"""

from __future__ import annotations

from typing import Any

import pytest
from exactmc_sandbox.mailchimp import MailchimpSandbox
from exactmc_sandbox.mailchimp.emails import subscriber_hash
from exactmc_sandbox.mailchimp.handler_tools import (
    _drop,
    _drop_tree,
    _pick,
    _pick_tree,
    _selection,
)
from exactmc_sandbox.mailchimp.member_ops import MemberWriter
from scale_cost import MAX_RATIO, cost

TARGET_FIELDS = "members.email_address,members.status,members.last_changed,total_items"


def _audience(members: int, tagged: bool = False) -> MailchimpSandbox:
    sandbox = MailchimpSandbox(list_id="L1")
    state = sandbox.context.state
    writer = MemberWriter(state, state.lists["L1"])
    tag = writer.tag_id("Klant") if tagged else None
    for n in range(members):
        member, _ = writer.upsert(f"p{n}@acme.nl", {
            "status_if_new": ("subscribed", "unsubscribed", "transactional")[n % 3],
            "merge_fields": {"FNAME": f"Anna {n}", "LNAME": "Bakker"}})
        if tag is not None and n % 2:
            writer.set_tag(member, tag, True)
    return sandbox


def _get(sandbox: MailchimpSandbox, **params: Any) -> dict[str, Any]:
    with sandbox.app.test_client() as client:
        answer = client.get("/3.0/lists/L1/members", query_string=params,
                            auth=("u", sandbox.api_key))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()


@pytest.fixture(scope="module")
def small() -> MailchimpSandbox:
    return _audience(60, tagged=True)


@pytest.mark.parametrize("fields", [
    TARGET_FIELDS, "members.email_address,members.last_changed,total_items",
    "members.id,members.merge_fields.FNAME,members.full_name,members.tags.name",
    "members.tags,members.tags_count,members.unique_email_id,members.contact_id,members.web_id",
    "members,total_items", "list_id,total_items", "members.nope",
])
def test_a_fields_selection_is_the_full_answer_filtered(small: MailchimpSandbox,
                                                         fields: str) -> None:
    params = {"count": 50, "offset": 3}
    full = _get(small, **params)
    paths = [f.split(".") for f in fields.split(",")]
    assert _get(small, fields=fields, **params) == _pick(full, paths)
    both = _get(small, fields=fields, exclude_fields="members.status", **params)
    assert both == _drop(_pick(full, paths), [["members", "status"]])


def test_a_fields_selection_costs_less_than_the_full_answer() -> None:
    sandbox = _audience(1000)
    selected = cost(lambda: _get(sandbox, count=1000, fields=TARGET_FIELDS))
    full = cost(lambda: _get(sandbox, count=1000))
    # Steps (scale_cost): ~0.4 of the full answer's; built everything, then filtered: > 1.
    assert selected < full / 2, (selected, full)


def test_paging_a_filtered_read_costs_the_page_not_the_audience() -> None:
    """The target pages through every member changed since its bookmark (100 pages at 100k):
    a scan of the audience per page made that quadratic."""
    def paging_cost(sandbox: MailchimpSandbox) -> int:
        params = {"since_last_changed": "2000-01-01T00:00:00Z", "count": 10,
                  "fields": TARGET_FIELDS}
        _get(sandbox, **params)  # the first page may filter the audience
        return cost(lambda: [_get(sandbox, offset=offset, **params) for offset in (10, 20, 30)])

    small, large = _audience(300), _audience(15_000)
    assert paging_cost(large) < MAX_RATIO * paging_cost(small)


def test_a_paged_read_sees_every_change_made_between_its_pages(small: MailchimpSandbox) -> None:
    audience = small.context.state.lists["L1"]
    writer = MemberWriter(small.context.state, audience)
    since = {"since_last_changed": "2000-01-01T00:00:00Z", "fields": TARGET_FIELDS}
    for n, params in enumerate(
            ({}, since, {"status": "subscribed"}, {"sort_field": "last_changed"})):
        first = _get(small, count=5, **params)
        writer.upsert(f"new.{n}@acme.nl", {"status_if_new": "subscribed"})
        assert _get(small, count=5, **params)["total_items"] == first["total_items"] + 1
        writer.delete_permanently(subscriber_hash(f"new.{n}@acme.nl"))
        assert _get(small, count=5, **params)["total_items"] == first["total_items"]
    subscribed = _get(small, count=1000, status="subscribed")["members"]
    writer.set_status_as_owner(subscriber_hash(subscribed[0]["email_address"]), "unsubscribed")
    after = _get(small, count=1000, status="subscribed")["members"]
    assert after == subscribed[1:]
    small.advance_clock(3600)
    writer.upsert(subscribed[1]["email_address"], {"merge_fields": {"LNAME": "Smit"}})
    newest = _get(small, count=1000, sort_field="last_changed", sort_dir="DESC")["members"][0]
    assert newest["email_address"] == subscribed[1]["email_address"]
    assert _get(small, since_last_changed=newest["last_changed"])["total_items"] == 1


def test_a_selection_is_parsed_once_and_never_changed_by_use() -> None:
    """Operations of a batch share their `fields`: parsed once (issue 9), used read-only."""
    tree = _selection("id,customer.total_spent,lines.id")
    assert _selection("id,customer.total_spent,lines.id") is tree
    before = repr(tree)
    data = {"id": 1, "x": 2, "customer": {"total_spent": 3, "y": 4}, "lines": [{"id": 5, "z": 6}]}
    assert _pick_tree(data, tree) == {"id": 1, "customer": {"total_spent": 3},
                                      "lines": [{"id": 5}]}
    assert _drop_tree(data, tree) == {"x": 2, "customer": {"y": 4}, "lines": [{"z": 6}]}
    assert repr(tree) == before
