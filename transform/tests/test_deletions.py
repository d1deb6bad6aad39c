"""Exact deletions (sync/Deleted) → target deletions, or the next-newest record taking over."""

from __future__ import annotations

import json

import pytest
from mapper_test_kit import DIVISION, account, contact, deletion, guid, invoice, line

ACCOUNTS, CONTACTS, INVOICES, ITEMS = 2, 5, 13, 9


def canonical(records: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def base() -> dict[str, list[dict]]:
    return {
        "accounts": [account(1), account(2)],
        "contacts": [
            contact(1, 1, Email="solo@example.nl"),
            contact(2, 1, Email="shared@example.nl", FirstName="Newer",
                    Modified="2024-06-01T00:00:00Z"),
            contact(3, 2, Email="shared@example.nl", FirstName="Older",
                    Modified="2023-06-01T00:00:00Z"),
        ],
        "sales_invoices": [invoice(1, 1)],
        "sales_invoice_lines": [line(1, 1)],
    }


def test_deleted_contact_deletes_its_member(pipeline):
    pipeline.run(base())

    out = pipeline.run({"deletions": [deletion(1, CONTACTS, guid(10_001))]})

    assert out.records() == [{"entity": "member", "key": "solo@example.nl",
                              "deleted_at": "2024-04-01T12:00:00+00:00"}]
    deletion_schema = next(m for m in out if m["type"] == "SCHEMA")
    assert deletion_schema["key_properties"] == ["entity", "key"]


def test_deleted_contact_sharing_an_email_hands_over_to_the_next_newest(pipeline):
    pipeline.run(base())

    out = pipeline.run({"deletions": [deletion(1, CONTACTS, guid(10_002))]})

    assert out.records("deletions") == []
    [member] = out.records("members")
    assert member["email"] == "shared@example.nl"
    assert member["merge_fields"]["FNAME"] == "Older"
    assert member["source_key"] == f"exact:{DIVISION}:contact:{guid(10_003)}"


def test_deleted_account_deletes_its_members(pipeline):
    pipeline.run(base())

    out = pipeline.run({"deletions": [deletion(1, ACCOUNTS, guid(1))]})

    assert out.records("deletions") == [{"entity": "member", "key": "solo@example.nl",
                                         "deleted_at": "2024-04-01T12:00:00+00:00"}]
    # shared@ is still held by account 2's contact, which now wins.
    assert [m["source_key"] for m in out.records("members")] == [
        f"exact:{DIVISION}:contact:{guid(10_003)}"]


def test_deleted_invoice_deletes_its_order_and_stale_resend_is_ignored(pipeline):
    pipeline.run(base())
    order_id = f"exact-{DIVISION}-{guid(20_001)}"

    out = pipeline.run({"deletions": [deletion(1, INVOICES, guid(20_001))]})
    assert out.records("deletions") == [{"entity": "order", "key": order_id,
                                         "deleted_at": "2024-04-01T12:00:00+00:00"}]

    # A full refresh that still carries the old invoice (and the deletion) sends nothing new.
    again = pipeline.run({**base(), "deletions": [deletion(1, INVOICES, guid(20_001))]},
                         full_refresh=True)
    assert again.records("orders") == [] and again.records("deletions") == []


def test_deleted_item_deletes_its_product(pipeline):
    pipeline.run(base())

    out = pipeline.run({"deletions": [deletion(1, ITEMS, guid(40_001))]})

    assert out.records() == [{"entity": "product", "key": f"exact-{DIVISION}-{guid(40_001)}",
                              "deleted_at": "2024-04-01T12:00:00+00:00"}]


def test_deleting_something_never_sent_sends_nothing(pipeline):
    out = pipeline.run({"deletions": [deletion(1, CONTACTS, guid(12_345)),
                                      deletion(2, INVOICES, guid(22_345))]})
    assert out.records() == []


def test_contact_changing_address_retires_the_old_one(pipeline):
    pipeline.run(base())

    out = pipeline.run({"contacts": [contact(1, 1, Email="nieuw@example.nl",
                                             Modified="2024-07-01T00:00:00Z")]})

    assert [m["email"] for m in out.records("members")] == ["nieuw@example.nl"]
    [gone] = out.records("deletions")
    assert (gone["entity"], gone["key"]) == ("member", "solo@example.nl")


def test_account_inbox_member_is_kept_when_the_account_gains_contacts(pipeline):
    pipeline.run({"accounts": [account(5)], "contacts": []})

    out = pipeline.run({"contacts": [contact(50, 5)]})

    assert [m["email"] for m in out.records("members")] == ["jan.contact50@example.nl"]
    assert out.records("deletions") == []


@pytest.mark.parametrize("deleted", [
    [deletion(1, CONTACTS, guid(10_001)), deletion(2, CONTACTS, guid(10_002))],
    [deletion(3, INVOICES, guid(20_001))],
], ids=["contacts", "invoice"])
def test_deletion_the_target_never_confirmed_is_sent_again_with_what_it_changed(
        pipeline, deleted):
    pipeline.run(base())
    first = pipeline.run({"deletions": deleted}, target_confirms=False)  # target died
    # contacts: solo@ deleted, shared@ handed over, account 1's customer now its inbox;
    # invoice: its order deleted and its cost center's tag removed from account 1's people.
    assert first.records("deletions")
    assert first.records("members") or first.records("member_tags")

    # The tap resends from the state the target confirmed, but the deleted rows are gone by
    # now: everything the deletion changed must still go again, once.
    retry = pipeline.run({"deletions": deleted})
    assert canonical(retry.records()) == canonical(first.records())
    assert pipeline.run({"deletions": deleted}).records() == []


def test_changed_address_still_held_by_another_record_is_not_deleted(pipeline):
    pipeline.run(base())

    # Contact 2 (the newest holder of shared@) moves to a new address; contact 3 still has it.
    out = pipeline.run({"contacts": [contact(2, 1, Email="nieuw@example.nl",
                                             Modified="2024-07-01T00:00:00Z")]})

    assert out.records("deletions") == []
    members = out.by_key("members", "email")
    assert set(members) == {"nieuw@example.nl", "shared@example.nl"}
    assert members["shared@example.nl"]["merge_fields"]["FNAME"] == "Older"


def test_account_inbox_changing_address_retires_the_old_one(pipeline):
    pipeline.run({"accounts": [account(5)], "contacts": []})

    out = pipeline.run({"accounts": [account(5, Email="post@bakkerij5.nl")]})

    assert [m["email"] for m in out.records("members")] == ["post@bakkerij5.nl"]
    assert [(d["entity"], d["key"]) for d in out.records("deletions")] == [
        ("member", "info@bakkerij5.nl")]
