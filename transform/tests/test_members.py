"""Members: mapping, rejections, consent and dedup by email."""

from __future__ import annotations

import itertools

from mapper_test_kit import (
    DIVISION,
    account,
    contact,
    dead_letters,
    fresh_store,
    guid,
    invoice,
    line,
    rec,
    tap_run,
)


def test_contact_becomes_member_with_merge_fields(run_mapper):
    out = run_mapper(tap_run({
        "accounts": [account(1, Modified="2024-05-01T08:00:00Z")],
        "contacts": [contact(1, 1)],
    }))

    members = out.by_key("members", "email")
    assert set(members) == {"jan.contact1@example.nl"}  # trimmed, lower-cased
    member = members["jan.contact1@example.nl"]
    assert member["source_key"] == f"exact:{DIVISION}:contact:{guid(10_001)}"
    # The account changed after the contact: its Modified is the one that matters.
    assert member["source_updated_at"] == "2024-05-01T08:00:00+00:00"
    assert member["merge_fields"] == {
        "FNAME": "Jan", "LNAME": "van Dijk", "COMPANY": "Bakkerij 1 BV",
        "PHONE": "+31 6 1234 5678", "ACCCODE": "1", "RELSTATUS": "customer", "COUNTRY": "NL",
        "ADDRESS": {"addr1": "Damrak 1", "addr2": "2e etage", "city": "Amsterdam",
                    "state": "NH", "zip": "1012 LG", "country": "NL"},
    }
    assert member["language"] == "nl"
    assert "opt_out" not in member and "status_if_new" not in member
    # The account's own inbox is not a member while a contact has a usable address.
    assert "info@bakkerij1.nl" not in members


def test_schema_sent_once_before_first_record_with_contract_keys(run_mapper):
    out = run_mapper(tap_run({
        "accounts": [account(1), account(2)],
        "contacts": [contact(1, 1), contact(2, 2)],
    }))

    member_messages = [m for m in out if m.get("stream") == "members"]
    assert member_messages[0]["type"] == "SCHEMA"
    assert member_messages[0]["key_properties"] == ["email"]
    assert [m["type"] for m in member_messages[1:]] == ["RECORD", "RECORD"]
    # Input streams never leak into the output.
    assert not [m for m in out if m.get("stream") in ("accounts", "contacts")]


def test_address_without_state_uses_setting(run_mapper, mapper_config):
    records = {"accounts": [account(1, State=None)], "contacts": [contact(1, 1)]}

    fallback = run_mapper(tap_run(records)).records("members")[0]["merge_fields"]["ADDRESS"]
    assert fallback["state"] == "Netherlands"

    mapper_config.update(fresh_store(mapper_config, "omit"))
    omitted = run_mapper(tap_run(records), address_state_fallback="omit").records("members")[0]
    assert "ADDRESS" not in omitted["merge_fields"]


def test_business_email_fallback_and_account_email_without_contacts(run_mapper):
    out = run_mapper(tap_run({
        "accounts": [account(1), account(2, Status="P")],
        "contacts": [contact(1, 1, Email="not an email", BusinessEmail="Sales@Bakkerij1.NL")],
    }))

    members = out.by_key("members", "email")
    assert set(members) == {"sales@bakkerij1.nl", "info@bakkerij2.nl"}
    assert members["info@bakkerij2.nl"]["source_key"] == f"exact:{DIVISION}:account:{guid(2)}"
    assert members["info@bakkerij2.nl"]["merge_fields"]["RELSTATUS"] == "prospect"
    assert members["info@bakkerij2.nl"]["merge_fields"]["FNAME"] == ""


def test_unusable_emails_go_to_dead_letters_with_key_and_reason(pipeline, mapper_config):
    streams = {
        "accounts": [account(1), account(2, Email="")],
        "contacts": [contact(1, 1, Email="jan@@example", BusinessEmail=None),
                     contact(2, 1, Email="piet@example.nl")],
    }

    out = pipeline.run(streams)

    # The run goes on: the good contact is a member.
    assert set(out.by_key("members", "email")) == {"piet@example.nl"}
    letters = {(d["stream"], d["key"]): d for d in dead_letters(mapper_config)}
    assert set(letters) == {("contacts", guid(10_001)), ("accounts", guid(2))}
    assert "invalid email 'jan@@example'" in letters[("contacts", guid(10_001))]["reason"]
    assert letters[("accounts", guid(2))]["reason"].startswith(
        "account without contacts has no usable email")
    assert all(d["division"] == DIVISION and d["time"] for d in letters.values())

    # An unchanged bad record is not reported again on the next run...
    pipeline.run(streams, full_refresh=True)
    assert len(dead_letters(mapper_config)) == 2

    # ...and once fixed it becomes a member (and only that is sent).
    fixed = pipeline.run({"contacts": [contact(1, 1, Email="jan@example.nl")]})
    assert set(fixed.by_key("members", "email")) == {"jan@example.nl"}
    assert len(dead_letters(mapper_config)) == 2


def test_mailing_excluded_and_blocked_are_never_subscribed(run_mapper):
    out = run_mapper(tap_run({
        "accounts": [account(1), account(2, Blocked=True)],
        "contacts": [contact(1, 1, IsMailingExcluded=True), contact(2, 1), contact(3, 2)],
    }))

    members = out.by_key("members", "email")
    assert members["jan.contact1@example.nl"]["opt_out"] is True
    assert members["jan.contact3@example.nl"]["opt_out"] is True  # blocked account
    assert "opt_out" not in members["jan.contact2@example.nl"]
    assert all(m.get("status_if_new") != "subscribed" for m in members.values())


def test_excluded_handling_tag_adds_suppression_tag_and_unsubscribed_if_new(run_mapper):
    out = run_mapper(tap_run({
        "accounts": [account(1)],
        "contacts": [contact(1, 1, IsMailingExcluded=True)],
    }), excluded_handling="tag")

    member = out.records("members")[0]
    assert member["status_if_new"] == "unsubscribed"
    assert "opt_out" not in member
    tags = out.records("member_tags")
    assert [(t["tag_name"], t["active"]) for t in tags] == [("Do not mail", True)]


def test_shared_email_with_one_excluded_record_is_not_subscribed(run_mapper):
    # The newest record does not carry the exclusion; the older one does. Consent wins.
    out = run_mapper(tap_run({
        "accounts": [account(1), account(2)],
        "contacts": [
            contact(1, 1, Email="same@example.nl", IsMailingExcluded=True,
                    Modified="2023-01-01T00:00:00Z"),
            contact(2, 2, Email="same@example.nl", Modified="2025-01-01T00:00:00Z"),
        ],
    }))

    member = out.by_key("members", "email")["same@example.nl"]
    assert member["source_key"].endswith(guid(10_002))
    assert member["opt_out"] is True


def test_dedup_newest_modified_wins_whatever_the_order(run_mapper, mapper_config):
    records = [
        ("contacts", contact(1, 1, Email="shared@example.nl", FirstName="Old",
                             Modified="2022-01-01T00:00:00Z")),
        ("contacts", contact(2, 2, Email="SHARED@example.nl", FirstName="Newest",
                             Modified="2024-06-01T00:00:00Z")),
        ("contacts", contact(3, 3, Email=" shared@example.nl", FirstName="Middle",
                             Modified="2023-01-01T00:00:00Z")),
    ]
    accounts = [rec("accounts", account(n, Modified="2020-01-01T00:00:00Z")) for n in (1, 2, 3)]
    base = dict(mapper_config)
    for i, order in enumerate(itertools.permutations(records)):
        mapper_config.update(fresh_store(base, f"p{i}"))
        out = run_mapper([*accounts, *(rec(s, r) for s, r in order)])
        members = out.records("members")
        assert len(members) == 1
        assert members[0]["merge_fields"]["FNAME"] == "Newest"
        assert members[0]["source_updated_at"] == "2024-06-01T00:00:00+00:00"


def test_dedup_across_runs_older_record_arriving_later_does_not_win(pipeline):
    pipeline.run({
        "accounts": [account(1), account(2)],
        "contacts": [contact(1, 1, Email="x@example.nl", FirstName="New",
                             Modified="2024-06-01T00:00:00Z")],
    })

    later = pipeline.run({"contacts": [contact(2, 2, Email="x@example.nl", FirstName="Old",
                                               Modified="2021-01-01T00:00:00Z")]})

    # The winner is unchanged, so nothing is re-sent for that address.
    assert later.records("members") == []


def test_contact_opting_out_later_is_unsubscribed_and_tag_mode_follows_exact(pipeline):
    pipeline.run({"accounts": [account(1)], "contacts": [contact(1, 1)]},
                 excluded_handling="tag")

    excluded = pipeline.run({"contacts": [contact(1, 1, IsMailingExcluded=True)]},
                            excluded_handling="tag")
    assert excluded.records("members")[0]["status_if_new"] == "unsubscribed"
    assert [(t["tag_name"], t["active"]) for t in excluded.records("member_tags")] == [
        ("Do not mail", True)]

    included = pipeline.run({"contacts": [contact(1, 1, IsMailingExcluded=False)]},
                            excluded_handling="tag")
    assert [(t["tag_name"], t["active"]) for t in included.records("member_tags")] == [
        ("Do not mail", False)]
    # Never re-subscribed by the mapper: no status, only status_if_new for new members.
    assert "status" not in included.records("members")[0]


def test_lifted_exclusion_sends_no_opt_out_reversal(pipeline):
    # Unsubscribe mode: Mailchimp keeps the address unsubscribed once opted out; only the
    # person can re-subscribe. Unblocking the account (or re-including the contact) in Exact
    # must not look like a re-subscription, nor let a re-created member start subscribed.
    pipeline.run({"accounts": [account(1, Blocked=True)], "contacts": [contact(1, 1)]})

    unblocked = pipeline.run({"accounts": [account(1, Blocked=False)]})

    [member] = unblocked.records("members")
    assert member.get("opt_out") is not False and "opt_out" not in member
    assert member["status_if_new"] == "unsubscribed"


def test_customer_active_again_after_inactivity_opt_out_is_not_resubscribed(pipeline):
    old_sale = {"sales_invoices": [invoice(1, 1, InvoiceDate="2019-01-01T00:00:00Z")],
                "sales_invoice_lines": [line(1, 1, None)]}
    first = pipeline.run({"accounts": [account(1)], "contacts": [contact(1, 1)], **old_sale},
                         inactive_after_days=365, inactive_handling="opt_out")
    assert first.records("members")[0]["opt_out"] is True

    new_sale = pipeline.run({"sales_invoices": [invoice(2, 1, InvoiceDate="2099-01-01T00:00:00Z")],
                             "sales_invoice_lines": [line(2, 2, None)]},
                            inactive_after_days=365, inactive_handling="opt_out")

    [member] = new_sale.records("members")
    assert "opt_out" not in member and member["status_if_new"] == "unsubscribed"


def test_blank_contact_fields_fall_back_phone_to_mobile_then_account_and_language(run_mapper):
    out = run_mapper(tap_run({
        "accounts": [account(1, Phone="+31 20 000 0001")],
        "contacts": [contact(1, 1, Phone=None, Mobile="+31 6 0000 0002"),
                     contact(2, 1, Phone=" ", Mobile=None, Language=" ")],
    }))

    phones = {m["email"]: m["merge_fields"]["PHONE"] for m in out.records("members")}
    assert phones == {"jan.contact1@example.nl": "+31 6 0000 0002",
                      "jan.contact2@example.nl": "+31 20 000 0001"}
    assert {m["language"] for m in out.records("members")} == {"nl"}  # the account's
