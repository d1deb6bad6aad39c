"""A 2xx answer that cannot be read is an error to retry, never "no data" (issue 7, item 1).

Each case spoils one kind of call with the sandbox's `garble` fault (the request is served,
then its body is cut in half or emptied) during one scenario touching every endpoint the
target uses. A transient garble is retried and the run ends exactly as a clean one; a
persistent one fails the run (no STATE) without anything wrong written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from target_mailchimp.audit import AuditStore
from target_mailchimp.auth import CredentialsError
from target_mailchimp.client import MailchimpError
from target_mailchimp.testing import (
    audit_rows,
    base_config,
    run_target,
    state,
    stream,
    to_lines,
)

SEGMENT_LIST = r"/lists/[^/]+/segments$"

# (id, path regex, method): one kind of call each.
CALLS = [
    ("member-reads", r"/lists/[^/]+/members$", "GET"),
    ("batch-subscribe", r"^/3\.0/lists/[^/]+$", "POST"),
    ("member-put", r"/members/[0-9a-f]{32}$", "PUT"),
    ("merge-field-reads", r"/merge-fields$", "GET"),
    ("merge-field-create", r"/merge-fields$", "POST"),
    ("segment-reads", SEGMENT_LIST, "GET"),
    ("segment-create", SEGMENT_LIST, "POST"),
    ("segment-update", r"/segments/\d+$", "POST"),
    ("store-patch", r"/ecommerce/stores/[^/]+$", "PATCH"),
    ("product-put", r"/products/P1$", "PUT"),
    ("order-put", r"/orders/O1$", "PUT"),
    ("batches-create", r"^/3\.0/batches$", "POST"),
    ("batches-poll", r"^/3\.0/batches/[^/]+$", "GET"),
    ("batch-results", r"/batch-results/", "GET"),
]

# Creations whose retry, however garbled, meets "already exists" and finds what it made.
HEALING = {(r"/merge-fields$", "POST"), (SEGMENT_LIST, "POST")}

STAMP = "2030-01-01T00:00:00Z"  # newer than anything in Mailchimp: no conflict skips
CUSTOMERS = [{"id": f"C{i}", "email": f"c{i}@example.com"} for i in range(1, 4)]


def scenario() -> list[dict[str, Any]]:
    return [
        *stream("members", [
            {"email": "old@example.com", "source_updated_at": STAMP,
             "merge_fields": {"FNAME": "Old2", "NEWFLD": "n"}},
            {"email": "new1@example.com", "source_updated_at": STAMP},
            {"email": "new2@example.com", "source_updated_at": STAMP},
            {"email": "gone@example.com", "source_updated_at": STAMP,
             "merge_fields": {"FNAME": "Back"}},
            # Older than the edit made in Mailchimp since: Mailchimp's version is kept.
            {"email": "edited@example.com", "source_updated_at": "2020-01-01T00:00:00Z",
             "merge_fields": {"FNAME": "Stale"}},
        ]),
        *stream("tags", [{"tag_key": "T1", "name": "Gold"}, {"tag_key": "T2", "name": "Silver"}]),
        *stream("member_tags", [
            {"email": "new1@example.com", "tag_key": "T1", "tag_name": "Gold"},
            {"email": "new2@example.com", "tag_key": "T2", "tag_name": "Silver"},
            # Not on the list: Mailchimp's answer lists it among `errors`.
            {"email": "nobody@example.com", "tag_key": "T1", "tag_name": "Gold",
             "active": False}]),
        *stream("products", [{"id": "P1", "title": "Widget", "price": 5.0}]),
        *stream("customers", CUSTOMERS),
        *stream("orders", [{"id": "O1", "customer_id": "C1", "currency_code": "EUR",
                            "order_total": 10.0, "lines": [{"id": "1", "product_id": "P1",
                                                            "quantity": 2, "price": 5.0}]}]),
        state({"bookmark": "after"}),
    ]


# What a clean run leaves (computed by hand, not by running the target).
EXPECTED_MEMBERS = {
    "old@example.com": ("subscribed", {"FNAME": "Old2", "NEWFLD": "n"}, []),
    "new1@example.com": ("subscribed", {}, ["Gold"]),
    "new2@example.com": ("subscribed", {}, ["Silver"]),
    "gone@example.com": ("archived", {"FNAME": "Gone"}, []),
    "edited@example.com": ("unsubscribed", {"FNAME": "Ed"}, []),
    **{c["email"]: ("transactional", {}, []) for c in CUSTOMERS},
}


def seeded(sandbox: Any, tmp_path: Any, store_patched: bool = False) -> dict[str, Any]:
    """old@ exists, gone@ is archived, edited@ was changed in Mailchimp, the store and the
    tag Gold exist; customers go through /batches (3 writes). `store_patched`: the seeding
    run's import died with the store syncing, so the scenario's few store objects continue
    it (is_syncing PATCHed on and off; an incremental's few changes are no import)."""
    config = base_config(sandbox, tmp_path, batch_operations_threshold=3)
    run_target(config, [
        *stream("members", [{"email": "old@example.com", "merge_fields": {"FNAME": "Old"}},
                            {"email": "edited@example.com", "merge_fields": {"FNAME": "Ed"}},
                            {"email": "gone@example.com", "merge_fields": {"FNAME": "Gone"}}]),
        *stream("deletions", [{"entity": "member", "key": "gone@example.com"}]),
        *stream("products", [{"id": "P0", "title": "Gadget", "price": 1.0}]),  # the store
        *stream("tags", [{"tag_key": "SEED", "name": "Gold"}]),  # found by name later
    ])
    assert sandbox.member("gone@example.com")["status"] == "archived"
    sandbox.advance_clock(5)
    sandbox.set_member_status("edited@example.com", "unsubscribed")  # an edit in Mailchimp
    if store_patched:
        audit = AuditStore(config["audit_store_url"], "seed")
        try:
            audit.mark_store_syncing("exact-store")
        finally:
            audit.close()
    return config


def members_snapshot(sandbox: Any) -> dict[str, tuple[str, dict[str, Any], list[str]]]:
    return {m["email_address"]: (m["status"],
                                 {k: v for k, v in m["merge_fields"].items() if v},
                                 sorted(m["tags"]))
            for m in sandbox.members()}


def segment_names(sandbox: Any) -> list[str]:
    lst = sandbox.context.state.lists[sandbox.list_id]
    return sorted(s.name for s in lst.segments.values())


@pytest.mark.parametrize("body", [None, ""], ids=["cut-in-half", "empty"])
@pytest.mark.parametrize(("path", "method"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_a_transient_garbled_answer_is_retried_and_the_run_ends_right(
    mailchimp_sandbox, tmp_path, path, method, body
):
    config = seeded(mailchimp_sandbox, tmp_path, store_patched=method == "PATCH")
    mailchimp_sandbox.add_fault(path=path, method=method, kind="garble", body=body, count=1)

    states = run_target(config, scenario())

    assert mailchimp_sandbox.context.faults.list() == [], "the garbled answer never happened"
    assert_ended_right(mailchimp_sandbox, config, states)


def assert_ended_right(sandbox: Any, config: dict[str, Any], states: list[dict]) -> None:
    """What a clean run of `scenario()` leaves (expectations written by hand)."""
    assert states == [{"bookmark": "after"}]
    assert members_snapshot(sandbox) == EXPECTED_MEMBERS
    assert segment_names(sandbox) == ["Gold", "Silver"]  # no twin from a retried create
    store = sandbox.store("exact-store")
    assert sorted(store["customers"]) == ["C1", "C2", "C3"]
    assert sorted(store["products"]) == ["P0", "P1"]
    assert store["orders"]["O1"]["order_total"] == 10.0
    assert store["store"]["is_syncing"] is False
    assert audit_rows(config, outcome="failed") == []
    [untag] = audit_rows(config, record_key="nobody@example.com/T1")
    assert untag["outcome"] == "skipped" and "belong" in untag["reason"]
    # Our writes are remembered with the last_changed Mailchimp holds, so the next run does
    # not take them for edits made in Mailchimp.
    written = [e for e, (status, _, _) in EXPECTED_MEMBERS.items()
               if status in ("subscribed", "transactional")]
    remembered = own_last_changed(config, sandbox, written)
    assert remembered == {e: sandbox.member(e)["last_changed"] for e in written}


def own_last_changed(config: dict[str, Any], sandbox: Any, emails: list[str]) -> dict[str, Any]:
    store = AuditStore(config["audit_store_url"], "inspect")
    try:
        return {e: w.last_changed
                for e, w in store.own_member_changes(sandbox.list_id, emails).items()}
    finally:
        store.close()


@pytest.mark.parametrize(("path", "method"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_a_persistent_garbled_answer_fails_the_run_with_nothing_wrong_written(
    mailchimp_sandbox, tmp_path, path, method
):
    config = seeded(mailchimp_sandbox, tmp_path, store_patched=method == "PATCH")
    config["retry_max_tries"] = 3
    mailchimp_sandbox.add_fault(path=path, method=method, kind="garble", count=10_000)

    if (path, method) in HEALING:
        # The first try creates it; the retry's "already exists" (readable by its status)
        # sends the target to read it back.
        assert_ended_right(mailchimp_sandbox, config, run_target(config, scenario()))
        return
    with pytest.raises(MailchimpError):
        run_target(config, scenario())

    members = members_snapshot(mailchimp_sandbox)
    assert members["gone@example.com"][0] == "archived"  # never re-added
    for email, (status, _, _) in members.items():
        assert status == EXPECTED_MEMBERS[email][0]
    assert set(segment_names(mailchimp_sandbox)) <= {"Gold", "Silver"}


@pytest.mark.parametrize("body", [None, ""], ids=["cut-in-half", "empty"])
def test_garbled_read_of_archived_members_never_re_adds_them(mailchimp_sandbox, tmp_path,
                                                             body):
    """The reported case: the archived-members page was taken as empty and gone@ came back."""
    config = seeded(mailchimp_sandbox, tmp_path)
    # No source timestamps: the archived read is this run's first members read.
    mailchimp_sandbox.add_fault(path=r"/lists/[^/]+/members$", method="GET", kind="garble",
                                body=body, count=1)
    run_target(config, stream("members", [{"email": "gone@example.com",
                                           "merge_fields": {"FNAME": "Back"}}]))
    assert mailchimp_sandbox.context.faults.list() == []
    member = mailchimp_sandbox.member("gone@example.com")
    assert member["status"] == "archived" and member["merge_fields"]["FNAME"] == "Gone"
    [row] = audit_rows(config, record_key="gone@example.com", outcome="skipped")
    assert "archived" in row["reason"]

    mailchimp_sandbox.add_fault(path=r"/lists/[^/]+/members$", method="GET", kind="garble",
                                body=body, count=10_000)
    with pytest.raises(MailchimpError, match="after retries"):
        run_target({**config, "retry_max_tries": 3},
                   stream("members", [{"email": "gone@example.com"}]))
    assert mailchimp_sandbox.member("gone@example.com")["status"] == "archived"


def test_an_answer_without_the_expected_key_is_not_an_empty_page(mailchimp_sandbox, tmp_path):
    config = seeded(mailchimp_sandbox, tmp_path)
    mailchimp_sandbox.add_fault(path=r"/lists/[^/]+/members$", method="GET", kind="garble",
                                body='{"total_items": 0}', count=1)
    run_target(config, stream("members", [{"email": "gone@example.com"}]))
    assert mailchimp_sandbox.context.faults.list() == []
    assert mailchimp_sandbox.member("gone@example.com")["status"] == "archived"


def oauth_config(sandbox: Any, config: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in config.items() if k not in ("api_key", "base_url")}
    return {**config, "oauth_token": sandbox.oauth_token, "login_url": sandbox.url}


@pytest.mark.parametrize("body", [None, ""], ids=["cut-in-half", "empty"])
def test_a_garbled_oauth_metadata_answer_is_retried(mailchimp_sandbox, tmp_path, body):
    config = oauth_config(mailchimp_sandbox, base_config(mailchimp_sandbox, tmp_path))
    mailchimp_sandbox.add_fault(path="^/oauth2/metadata$", kind="garble", body=body, count=1)
    run_target(config, stream("members", [{"email": "oauth@example.com"}]))
    assert mailchimp_sandbox.context.faults.list() == []
    assert mailchimp_sandbox.member("oauth@example.com")["status"] == "subscribed"

    mailchimp_sandbox.add_fault(path="^/oauth2/metadata$", kind="garble", body=body,
                                count=10_000)
    with pytest.raises(CredentialsError, match="unreadable"):
        run_target({**config, "retry_max_tries": 3},
                   stream("members", [{"email": "later@example.com"}]))
    assert mailchimp_sandbox.member("later@example.com") is None


def test_a_persistent_garble_makes_the_target_exit_non_zero(mailchimp_sandbox, tmp_path):
    config = {**seeded(mailchimp_sandbox, tmp_path), "retry_max_tries": 2}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "input.jsonl").write_text(to_lines([
        *stream("members", [{"email": "gone@example.com"}]), state({"bookmark": 9})]))
    mailchimp_sandbox.add_fault(path=r"/lists/[^/]+/members$", method="GET", kind="garble",
                                body="", count=10_000)
    done = subprocess.run(
        [sys.executable, "-m", "target_mailchimp.target", "--config",
         str(tmp_path / "config.json"), "--input", str(tmp_path / "input.jsonl")],
        cwd=tmp_path, capture_output=True, timeout=120, check=False)
    assert done.returncode != 0
    assert done.stdout.strip() == b""  # no STATE: the next run repeats the batch
    assert b"unreadable answer" in done.stderr
    assert mailchimp_sandbox.member("gone@example.com")["status"] == "archived"


def test_a_garbled_store_create_is_retried_and_finds_the_store_it_made(mailchimp_sandbox,
                                                                        tmp_path):
    config = base_config(mailchimp_sandbox, tmp_path)
    mailchimp_sandbox.add_fault(path=r"^/3\.0/ecommerce/stores$", method="POST", kind="garble")

    states = run_target(config, [*stream("products", [{"id": "P1", "title": "W", "price": 5.0}]),
                                 state({"bookmark": "done"})])

    assert mailchimp_sandbox.context.faults.list() == [], "the garbled answer never happened"
    assert states == [{"bookmark": "done"}]
    store = mailchimp_sandbox.store("exact-store")
    assert sorted(store["products"]) == ["P1"] and store["store"]["is_syncing"] is False
