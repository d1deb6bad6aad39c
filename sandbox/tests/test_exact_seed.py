"""Seeded data of the Exact simulator and its control API (mutations, bad input)."""

from __future__ import annotations

import re

import requests
from exactmc_sandbox.exact import ExactSandbox

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ENTITIES = ("Accounts", "Contacts", "SalesInvoices", "Costcenters", "Items", "Receivables",
            "Deleted")


def test_same_seed_same_data_other_seed_other_data():
    first, second = ExactSandbox(seed=7, accounts_per_division=15), \
        ExactSandbox(seed=7, accounts_per_division=15)
    for entity in ENTITIES:
        assert first.rows(entity) == second.rows(entity), entity
    other = ExactSandbox(seed=8, accounts_per_division=15)
    assert other.rows("Accounts") != first.rows("Accounts")
    assert len(first.rows("Accounts", 101)) == 15


def test_small_seed_holds_every_awkward_case():
    sandbox = ExactSandbox(accounts_per_division=40)
    accounts = sandbox.rows("Accounts", 101)
    contacts = sandbox.rows("Contacts", 101)
    names = {c["FullName"] for c in contacts}
    assert {"Zoë Müller-Łukasz", "Åsa Lindqvist", "Ñandú Pérez"} <= names
    emails = [c["Email"] for c in contacts]
    assert None in emails
    assert {"jan@@example", "no-at-sign"} <= set(emails)
    valid = [e for e in emails if e and EMAIL.match(e.strip())]
    assert len(valid) > len(set(valid)), "some contacts share an e-mail address"
    assert any(c["IsMailingExcluded"] for c in contacts)
    assert any(a["Blocked"] for a in accounts)
    assert {a["Status"] for a in accounts} == {"C", "P"}
    assert all(len(a["Code"]) == 18 and a["Code"].startswith(" ") for a in accounts)

    invoices = sandbox.rows("SalesInvoices")
    assert {i["Type"] for i in invoices} == {8020, 8021}
    assert {"EUR", "GBP", "USD"} <= {i["Currency"] for i in invoices}
    assert all(1 <= len(i["SalesInvoiceLines"]) <= 4 for i in invoices)
    credit = next(i for i in invoices if i["Type"] == 8021)
    assert credit["AmountFC"] < 0
    assert {c["Active"] for c in sandbox.rows("Costcenters", 101)} == {True, False}
    receivables = sandbox.rows("Receivables", 101)
    paid = [r for r in receivables if r["IsFullyPaid"]]
    assert paid and all(r["LastPaymentDate"] for r in paid)
    assert {d["EntityType"] for d in sandbox.rows("Deleted")} <= {2, 5, 9, 13}
    assert len(sandbox.rows("Accounts", 201)) == 10  # the small second company
    assert max(r["Modified"] for r in accounts) < "2025-06-02"  # before the fixed base date


def test_control_api_mutations_and_bad_input(exact_sandbox):
    data = f"{exact_sandbox.url}/_sandbox/data"
    account = requests.post(f"{data}/Accounts", timeout=10, json={
        "Division": 101, "Name": "Zoë's Ñandú Farm", "Email": "zoe@farm.example",
        "Country": "BE"}).json()
    assert account["Code"].strip() and len(account["Code"]) == 18
    assert account["CountryName"] == "Belgium"
    contact = requests.post(f"{data}/Contacts", timeout=10, json={
        "Division": 101, "Account": account["ID"], "FirstName": "Zoë", "LastName": "Boer"}).json()
    assert contact["AccountName"] == "Zoë's Ñandú Farm" and contact["FullName"] == "Zoë Boer"

    item = exact_sandbox.rows("Items", 101)[0]
    invoice = requests.post(f"{data}/SalesInvoices", timeout=10, json={
        "Division": 101, "InvoiceTo": account["ID"], "Currency": "GBP",
        "SalesInvoiceLines": [{"Item": item["ID"], "Quantity": 2, "CostCenter": "100"}]})
    assert invoice.status_code == 201, invoice.text
    invoice = invoice.json()
    assert invoice["AmountFCExclVat"] == round(2 * item["StandardSalesPrice"], 2)
    receivable = next(r for r in exact_sandbox.rows("Receivables", 101)
                      if r["InvoiceNumber"] == invoice["InvoiceNumber"])
    paid = requests.post(f"{data}/Receivables/{receivable['ID']}/pay", timeout=10).json()
    assert paid["IsFullyPaid"] is True and paid["LastPaymentDate"]

    before = exact_sandbox.rows("Accounts", 101)
    for body in ({"Division": 101}, {"Division": 999, "Name": "x"},
                 {"Division": 101, "Name": "x", "Unknown": 1},
                 {"Division": 101, "Name": "x", "Status": "Z"}):
        refused = requests.post(f"{data}/Accounts", json=body, timeout=10)
        assert refused.status_code == 400 and refused.json()["error"], body
    bad_patch = requests.patch(f"{data}/Accounts/{account['ID']}", json={"Status": "nope"},
                               timeout=10)
    assert bad_patch.status_code == 400
    assert exact_sandbox.rows("Accounts", 101) == before  # refused input changed nothing
    assert requests.patch(f"{data}/Accounts/{account['ID']}", json={"Name": "Renamed"},
                          timeout=10).json()["Name"] == "Renamed"
    assert requests.delete(f"{data}/Contacts/{contact['ID']}", timeout=10).status_code == 200
    assert requests.delete(f"{data}/Contacts/{contact['ID']}", timeout=10).status_code == 404
    deleted = requests.get(f"{data}/Deleted", params={"division": 101}, timeout=10).json()
    assert deleted[-1]["EntityKey"] == contact["ID"] and deleted[-1]["EntityType"] == 5
    assert requests.post(f"{exact_sandbox.url}/_sandbox/divisions/102/move",
                         timeout=10).json()["DivisionMoveDate"]
    assert requests.get(f"{data}/Nope", timeout=10).status_code == 404
    assert exact_sandbox.calls()["total"] == 0  # control calls are not counted


def test_repr_and_errors_never_show_the_secret(exact_sandbox):
    assert exact_sandbox.client_secret not in repr(exact_sandbox)
    assert len(exact_sandbox.client_secret) >= 20


def test_control_api_invoice_lines_items_and_clock(exact_sandbox):
    data = f"{exact_sandbox.url}/_sandbox/data"
    invoice = requests.get(f"{data}/SalesInvoices", params={"division": 102},
                           timeout=10).json()[0]
    assert invoice["Division"] == 102 and invoice["SalesInvoiceLines"]
    item = exact_sandbox.rows("Items", 102)[1]
    changed = requests.patch(f"{data}/SalesInvoices/{invoice['InvoiceID']}", timeout=10, json={
        "SalesInvoiceLines": [{"Item": item["ID"], "Quantity": 3, "UnitPrice": 10.0},
                              {"Description": "Handling", "Quantity": 1, "UnitPrice": 5.5}]})
    assert changed.status_code == 200, changed.text
    lines = changed.json()["SalesInvoiceLines"]
    assert [(line["LineNumber"], line["AmountFC"]) for line in lines] == [(1, 30.0), (2, 5.5)]
    assert changed.json()["AmountFCExclVat"] == 35.5
    wrong_division_item = exact_sandbox.rows("Items", 101)[0]["ID"]
    refused = requests.patch(f"{data}/SalesInvoices/{invoice['InvoiceID']}", timeout=10,
                             json={"SalesInvoiceLines": [{"Item": wrong_division_item}]})
    assert refused.status_code == 400
    assert exact_sandbox.rows("SalesInvoices", 102)[-1]["SalesInvoiceLines"] == lines

    assert requests.delete(f"{data}/Items/{item['ID']}", timeout=10).status_code == 200
    assert exact_sandbox.rows("Deleted", 102)[-1]["EntityType"] == 9

    before = exact_sandbox.clock.now()
    assert requests.post(f"{exact_sandbox.url}/_sandbox/clock/advance", json={"seconds": 3600},
                         timeout=10).status_code == 200
    assert (exact_sandbox.clock.now() - before).total_seconds() >= 3600
    assert requests.post(f"{exact_sandbox.url}/_sandbox/clock/advance", json={"seconds": -1},
                         timeout=10).status_code == 400


def test_a_return_line_on_an_invoice_counts_negative_and_a_credit_note_always_does(exact_sandbox):
    data = f"{exact_sandbox.url}/_sandbox/data"
    invoice = exact_sandbox.rows("SalesInvoices", 102)[0]
    item = exact_sandbox.rows("Items", 102)[1]
    lines = [{"Item": item["ID"], "Quantity": 2, "UnitPrice": 50.0},
             {"Item": item["ID"], "Quantity": -1, "UnitPrice": 50.0}]
    changed = requests.patch(f"{data}/SalesInvoices/{invoice['InvoiceID']}", timeout=10,
                             json={"SalesInvoiceLines": lines})
    assert [line["AmountFC"] for line in changed.json()["SalesInvoiceLines"]] == [100.0, -50.0]
    credit = requests.patch(f"{data}/SalesInvoices/{invoice['InvoiceID']}", timeout=10,
                            json={"Type": 8021, "SalesInvoiceLines": lines})
    assert [line["AmountFC"] for line in credit.json()["SalesInvoiceLines"]] == [-100.0, -50.0]
