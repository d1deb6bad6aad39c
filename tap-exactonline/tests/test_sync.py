"""Full and incremental syncs against the Exact sandbox over real HTTP."""

from __future__ import annotations

import json
import re

import pytest
from tap_exactonline.divisions import ConfigurationError

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
SYNC_FEEDS = ("sync/CRM/Accounts", "sync/CRM/Contacts", "sync/SalesInvoice/SalesInvoices",
              "sync/Deleted", "bulk/Cashflow/Receivables", "hrm/Costcenters")


def _calls(sandbox, endpoint: str) -> int:
    return sandbox.calls()["by_endpoint"].get(f"GET {endpoint}", 0)


def test_full_sync_emits_every_row_with_exact_fields(exact_sandbox, config_for, run_tap):
    config = config_for(exact_sandbox, divisions=[101, 102])
    run = run_tap(config)

    for division in (101, 102):
        accounts = [r for r in run.records("accounts") if r["Division"] == division]
        assert {r["ID"] for r in accounts} == {
            r["ID"] for r in exact_sandbox.rows("Accounts", division)}
        invoices = exact_sandbox.rows("SalesInvoices", division)
        headers = [r for r in run.records("sales_invoices") if r["Division"] == division]
        assert {r["InvoiceID"] for r in headers} == {r["InvoiceID"] for r in invoices}
        lines = [r for r in run.records("sales_invoice_lines") if r["Division"] == division]
        expected_lines = {line["ID"] for inv in invoices for line in inv["SalesInvoiceLines"]}
        assert {r["ID"] for r in lines} == expected_lines
        assert all(r["LineNumber"] >= 1 and r["InvoiceID"] for r in lines)
        assert len(run.records("cost_centers")) > 0

    for stream in run.counts:
        for record in run.records(stream):
            assert isinstance(record["Division"], int)
            assert "division" not in record

    account = run.records("accounts")[0]
    assert account["Code"] == account["Code"].strip() and account["Code"]
    assert ISO_UTC.match(account["Modified"]) and ISO_UTC.match(account["Created"])
    receivable = run.records("receivables")[0]
    assert receivable["AccountId"] and "Account" not in receivable
    # One call per division per feed (each below 1,000 rows), the invoice feed read ONCE.
    for endpoint in SYNC_FEEDS:
        assert _calls(exact_sandbox, endpoint) == 2, endpoint
    assert _calls(exact_sandbox, "system/Divisions") == 1
    assert sum(exact_sandbox.calls()["by_endpoint"].values()) == 2 * len(SYNC_FEEDS) + 2


def test_dates_follow_the_amsterdam_wall_clock_reading(exact_sandbox, config_for, run_tap):
    created = exact_sandbox.create("Accounts", {
        "Division": 101, "Name": "Zomertijd BV", "Email": "zomer@example.com",
    })
    run = run_tap(config_for(exact_sandbox, divisions=[101]), select=["accounts"])
    record = next(r for r in run.records("accounts") if r["ID"] == created["ID"])
    # The sandbox's control API reports true UTC; the tap must arrive at the same instant.
    assert record["Created"].replace(".000", "")[:19] == created["Created"][:19]


def test_incremental_run_sees_only_changes(exact_sandbox, config_for, run_tap):
    config = config_for(exact_sandbox, divisions=[101, 102])
    first = run_tap(config)
    exact_sandbox.reset_calls()

    account = exact_sandbox.rows("Accounts", 101)[0]
    exact_sandbox.update("Accounts", account["ID"], {"Name": "Renamed BV"})
    new = exact_sandbox.create("Accounts", {"Division": 102, "Name": "Nieuw BV"})
    invoice = exact_sandbox.rows("SalesInvoices", 101)[0]
    exact_sandbox.update("SalesInvoices", invoice["InvoiceID"], {"Description": "Changed"})
    contact = exact_sandbox.rows("Contacts", 101)[0]
    exact_sandbox.delete("Contacts", contact["ID"])

    second = run_tap(config, state=first.state)

    assert {(r["ID"], r["Name"]) for r in second.records("accounts")} == {
        (account["ID"], "Renamed BV"), (new["ID"], "Nieuw BV")}
    assert [r["InvoiceID"] for r in second.records("sales_invoices")] == [invoice["InvoiceID"]]
    assert second.records("sales_invoices")[0]["Description"] == "Changed"
    assert {r["ID"] for r in second.records("sales_invoice_lines")} == {
        line["ID"] for line in invoice["SalesInvoiceLines"]}
    deletions = second.records("deletions")
    assert [(d["EntityKey"], d["EntityType"]) for d in deletions] == [(contact["ID"], 5)]
    assert second.records("contacts") == []
    # Bookmarks moved forward per division, independently.
    assert second.bookmark("accounts", 101)["replication_key_value"] > first.bookmark(
        "accounts", 101)["replication_key_value"]
    assert second.bookmark("contacts", 102) == first.bookmark("contacts", 102)
    # Still one call per feed and division: nothing is read twice.
    assert _calls(exact_sandbox, "sync/SalesInvoice/SalesInvoices") == 2


def test_modified_streams_filter_on_amsterdam_local_time(exact_sandbox, config_for, run_tap):
    config = config_for(exact_sandbox, divisions=[101], modified_overlap_seconds=0)
    first = run_tap(config, select=["cost_centers", "receivables"])
    assert first.records("cost_centers")

    changed = exact_sandbox.create("Costcenters", {
        "Division": 101, "Code": "950", "Description": "New"})
    receivable = next(r for r in exact_sandbox.rows("Receivables", 101) if not r["IsFullyPaid"])
    exact_sandbox.pay_receivable(receivable["ID"])
    second = run_tap(config, state=first.state, select=["cost_centers", "receivables"])

    assert [r["ID"] for r in second.records("cost_centers")] == [changed["ID"]]
    paid = second.records("receivables")
    assert [(r["ID"], r["IsFullyPaid"]) for r in paid] == [(receivable["ID"], True)]


def test_start_date_limits_the_first_modified_read(exact_sandbox, config_for, run_tap):
    config = config_for(exact_sandbox, divisions=[101], start_date="2099-01-01T00:00:00Z")
    run = run_tap(config, select=["cost_centers"])
    assert run.records("cost_centers") == []


def test_empty_divisions_means_the_current_division(exact_sandbox, config_for, run_tap):
    run = run_tap(config_for(exact_sandbox), select=["accounts"])
    assert {r["Division"] for r in run.records("accounts")} == {101}
    assert exact_sandbox.calls()["by_endpoint"]["GET current/Me"] == 1


def test_all_divisions_reads_every_division_of_the_company(exact_sandbox, config_for, run_tap):
    run = run_tap(config_for(exact_sandbox, all_divisions=True), select=["accounts"])
    assert {r["Division"] for r in run.records("accounts")} == {101, 102, 103}


def test_other_region_reads_its_own_company(exact_sandbox, config_for, run_tap):
    run = run_tap(config_for(exact_sandbox, region="be"), select=["accounts", "contacts"])
    assert {r["Division"] for r in run.records("accounts")} == {201}
    assert len(run.records("accounts")) == len(exact_sandbox.rows("Accounts", 201))


def test_unknown_division_is_a_clear_error_before_any_data_call(exact_sandbox, config_for, run_tap):
    with pytest.raises(ConfigurationError, match=r"\[999\]"):
        run_tap(config_for(exact_sandbox, divisions=[101, 999]))
    assert _calls(exact_sandbox, "sync/CRM/Accounts") == 0


def test_division_move_triggers_a_full_resync_of_that_division_only(
    exact_sandbox, config_for, run_tap
):
    config = config_for(exact_sandbox, divisions=[101, 102])
    first = run_tap(config, select=["accounts", "sales_invoices", "sales_invoice_lines"])
    exact_sandbox.move_division(101)

    second = run_tap(config, state=first.state,
                     select=["accounts", "sales_invoices", "sales_invoice_lines"])

    accounts = second.records("accounts")
    assert {r["ID"] for r in accounts} == {r["ID"] for r in exact_sandbox.rows("Accounts", 101)}
    assert {r["Division"] for r in second.records("sales_invoice_lines")} == {101}
    moved = second.bookmark("accounts", 101)
    assert moved["division_move_date"] != first.bookmark("accounts", 101)["division_move_date"]
    # Renumbered row versions: the new bookmark is lower than the old one, and that is right.
    assert moved["replication_key_value"] < first.bookmark("accounts", 101)[
        "replication_key_value"]

    third = run_tap(config, state=second.state, select=["accounts"])
    assert third.records("accounts") == []


def test_paging_follows_next_links_on_1000_row_pages(exact_sandbox_factory, config_for, run_tap):
    sandbox = exact_sandbox_factory(accounts_per_division=1100)
    run = run_tap(config_for(sandbox, divisions=[101]), select=["accounts"])
    assert len(run.records("accounts")) == len(sandbox.rows("Accounts", 101)) > 1000
    assert _calls(sandbox, "sync/CRM/Accounts") == 2
    assert len({r["ID"] for r in run.records("accounts")}) == len(run.records("accounts"))


def test_only_lines_selected_reads_the_feed_itself(exact_sandbox, config_for, run_tap):
    run = run_tap(config_for(exact_sandbox, divisions=[101]), select=["sales_invoice_lines"])
    assert run.records("sales_invoice_lines") and not run.records("sales_invoices")
    assert _calls(exact_sandbox, "sync/SalesInvoice/SalesInvoices") == 1


def test_partition_key_causes_no_schema_warning(exact_sandbox, config_for, run_tap_process,
                                                tmp_path):
    # The SDK copies the partition context ({"division": N}) into records; it must not end up
    # as a property "not found in catalog schema" warning for every stream on every run.
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config_for(exact_sandbox, divisions=[101])))
    run = run_tap_process(config_path)
    assert run.returncode == 0, run.logs[-2000:]
    assert run.counts["accounts"] > 0
    assert "not found in catalog schema" not in run.logs
    assert all("division" not in m["record"] for m in run.messages if m["type"] == "RECORD")
    assert run.bookmark("accounts", 101)["context"] == {"division": 101}


def test_lines_are_not_lost_when_the_run_ends_between_the_invoice_streams(
    exact_sandbox, config_for, run_tap
):
    invoice_streams = ["sales_invoices", "sales_invoice_lines"]
    config = config_for(exact_sandbox, divisions=[101])
    first = run_tap(config, select=invoice_streams)
    invoice = exact_sandbox.rows("SalesInvoices", 101)[0]
    exact_sandbox.update("SalesInvoices", invoice["InvoiceID"], {"Description": "Changed"})

    # The state a run leaves when it stops after sales_invoices (killed, or lines deselected).
    headers_only = run_tap(config, state=first.state, select=["sales_invoices"])
    assert [r["InvoiceID"] for r in headers_only.records("sales_invoices")] == [
        invoice["InvoiceID"]]
    assert headers_only.bookmark("sales_invoice_lines", 101) == first.bookmark(
        "sales_invoice_lines", 101)

    both = run_tap(config, state=headers_only.state, select=invoice_streams)
    assert both.records("sales_invoices") == []
    assert {r["ID"] for r in both.records("sales_invoice_lines")} == {
        line["ID"] for line in invoice["SalesInvoiceLines"]}
