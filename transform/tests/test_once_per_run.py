"""Each output is computed once per run, from complete input: no address twice in one run."""

from __future__ import annotations

import gc

from mapper_exact_mailchimp.mapper import GC_THRESHOLD
from mapper_test_kit import account, contact, invoice, line, rec, schema, state, tap_run

# The order in which tap-exactonline (singer-sdk) sends its streams.
TAP_ORDER = ("accounts", "contacts", "cost_centers", "deletions", "receivables",
             "sales_invoice_lines", "sales_invoices")


def emails(out) -> list[str]:
    return [r["email"] for r in out.records("members")]


def test_address_held_across_a_mid_stream_state_and_divisions_is_sent_once(run_mapper):
    # singer-sdk taps send a STATE every 10,000 records, also in the middle of a stream: the
    # second holder of an address (here in another division) comes after it.
    out = run_mapper([
        schema("accounts"), rec("accounts", account(1)),
        rec("accounts", account(2, Division=102)), state({"b": 1}),
        schema("contacts"),
        rec("contacts", contact(1, 1, Email="shared@example.nl", FirstName="Old",
                                Modified="2023-01-01T00:00:00Z")),
        state({"b": 2}),
        rec("contacts", contact(2, 2, Division=102, Email="shared@example.nl", FirstName="New",
                                Modified="2025-01-01T00:00:00Z")),
        state({"b": 3}),
        *[schema(stream) for stream in TAP_ORDER[2:]], state({"b": 4}),
    ])

    assert emails(out) == ["shared@example.nl"]
    assert out.records("members")[0]["merge_fields"]["FNAME"] == "New"


def test_account_inbox_shared_by_two_accounts_is_sent_once(run_mapper):
    # Account 1's only contact has no usable address (its inbox stands in at once); account 2
    # has no contacts (its inbox waits for the contacts stream): one address, one member.
    out = run_mapper(tap_run({
        "accounts": [account(1, Email="info@example.nl", Modified="2024-01-01T00:00:00Z"),
                     account(2, Email="info@example.nl", Modified="2024-06-01T00:00:00Z")],
        "contacts": [contact(1, 1, Email=None)],
        **{stream: [] for stream in TAP_ORDER[2:]},
    }))

    assert emails(out) == ["info@example.nl"]
    assert out.records("members")[0]["source_key"].endswith(account(2)["ID"])


def test_inactivity_opt_out_is_never_sent_before_the_invoices_are_read(run_mapper):
    # Invoices come last: a customer looks inactive until its recent invoice is read, and an
    # opt-out sent in the meantime would unsubscribe it for good.
    streams = {stream: [] for stream in TAP_ORDER} | {
        "accounts": [account(1)], "contacts": [contact(1, 1)],
        "sales_invoice_lines": [line(1, 1)],
        "sales_invoices": [invoice(1, 1, InvoiceDate="2099-01-01T00:00:00Z")],
    }

    out = run_mapper(tap_run(streams), inactive_after_days=365, inactive_handling="opt_out")

    assert emails(out) == ["jan.contact1@example.nl"]
    assert "opt_out" not in out.records("members")[0]


def test_young_collections_are_rare_during_a_run(run_mapper):
    # Issue 9: CPython's default (a young pass every 700 allocations) was ~5 % of the CPU.
    gc.set_threshold(700, 10, 10)
    out = run_mapper(tap_run({"accounts": [account(1)]}))
    assert gc.get_threshold()[0] == GC_THRESHOLD
    assert emails(out) == ["info@bakkerij1.nl"]
