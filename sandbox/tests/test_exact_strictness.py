"""The Exact simulator as strict as the real API, no stricter: documented properties, whole-minute
rate-limit windows, and edge dates and numbers answered with Exact's error body, never a crash."""

from __future__ import annotations

import json
import time

import pytest
import requests


def _login(sandbox, region="nl"):
    tokens = requests.post(f"{sandbox.base_url(region)}/api/oauth2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token(region),
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}).json()
    return {"Accept": "application/json", "Authorization": f"Bearer {tokens['access_token']}"}


def _get(sandbox, headers, path, **params):
    return requests.get(f"{sandbox.base_url()}/api/v1/{path}", params=params, headers=headers,
                        timeout=10)


def _post(sandbox, headers, path, body):
    return requests.post(f"{sandbox.base_url()}/api/v1/101/{path}", json=body, headers=headers,
                         timeout=10)


def _error_text(answer) -> str:
    return answer.json()["error"]["message"]["value"]


ACCOUNT_EXTRAS = "ID,AccountManager,SearchCode,Latitude,Longitude"
INVOICE_EXTRAS = "InvoiceID,OrderDate,Creator,Salesperson,AmountDiscount"


@pytest.mark.parametrize(("path", "select"), [
    ("101/sync/CRM/Accounts", ACCOUNT_EXTRAS + ",Timestamp"),
    ("101/bulk/CRM/Accounts", ACCOUNT_EXTRAS),
    ("101/crm/Accounts", ACCOUNT_EXTRAS),
    ("101/sync/CRM/Contacts", "ID,Title,Initials,JobTitleDescription,Timestamp"),
    ("101/crm/Contacts", "ID,Title,Initials,JobTitleDescription"),
    ("101/sync/SalesInvoice/SalesInvoices", INVOICE_EXTRAS + ",LineNumber,NetPrice,Timestamp"),
    ("101/bulk/SalesInvoice/SalesInvoices", INVOICE_EXTRAS),
    ("101/salesinvoice/SalesInvoices", INVOICE_EXTRAS),
    ("101/bulk/SalesInvoice/SalesInvoiceLines", "ID,NetPrice,VATCode,UnitCode"),
    ("101/hrm/Costcenters", "ID,Creator,EndDate"),
    ("101/logistics/Items", "ID,Barcode,IsStockItem"),
    ("101/bulk/Cashflow/Receivables", "ID,AccountCode,BankAccountNumber,PaymentCondition"),
    ("101/sync/Deleted", "ID,EntityKey,Timestamp"),
    ("101/system/Divisions", "Code,IsMainDivision,VATNumber,DivisionMoveDate"),
    ("current/Me", "CurrentDivision,ServerTime,Legislation"),
])
def test_every_documented_property_can_be_selected(exact_sandbox, path, select):
    headers = _login(exact_sandbox)
    answer = _get(exact_sandbox, headers, path, **{"$select": select})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["d"]["results"]
    assert rows
    assert all(list(row) == select.split(",") for row in rows)
    assert all(rows[0][name] is not None for name in select.split(",")[:1])  # real data kept


@pytest.mark.parametrize("path", ["101/sync/CRM/Accounts", "101/crm/Accounts",
                                  "101/salesinvoice/SalesInvoices", "101/system/Divisions",
                                  "current/Me"])
def test_an_unknown_property_is_still_refused(exact_sandbox, path):
    headers = _login(exact_sandbox)
    answer = _get(exact_sandbox, headers, path, **{"$select": "NoSuchProperty"})
    assert answer.status_code == 400
    assert "NoSuchProperty" in _error_text(answer)


def test_minutely_windows_restart_on_whole_minutes(exact_sandbox):
    headers = _login(exact_sandbox)
    before = time.time()
    answers = [_get(exact_sandbox, headers, "101/logistics/Items") for _ in range(2)]
    resets = {int(a.headers["X-RateLimit-Minutely-Reset"]) for a in answers}
    after = time.time()
    for reset in resets:
        assert reset % 60_000 == 0  # epoch ms at :00 of a minute, as public logs show
        assert before * 1000 < reset <= after * 1000 + 60_000
    remaining = [int(a.headers["X-RateLimit-Minutely-Remaining"]) for a in answers]
    assert remaining == [59, 58] or remaining[1] == 59  # the second call may open a new minute


def test_a_shortened_minute_is_aligned_too(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(minutely_limit=2, minute_seconds=0.5)
    headers = _login(sandbox)
    answer = _get(sandbox, headers, "101/logistics/Items")
    assert int(answer.headers["X-RateLimit-Minutely-Reset"]) % 500 == 0


def _invoice(sandbox, **fields):
    account = sandbox.rows("Accounts", 101)[0]["ID"]
    item = sandbox.rows("Items", 101)[0]["ID"]
    lines = fields.pop("lines", [{"Item": item, "Quantity": 1}])
    return {"InvoiceTo": account, "SalesInvoiceLines": lines, **fields}


@pytest.mark.parametrize("fields", [
    {"InvoiceDate": "9999-12-31"},  # its DueDate (+30 days) is past the last date Exact keeps
    {"InvoiceDate": "9999-12-31T23:59:59Z"},  # the Amsterdam wall clock is in year 10000
    {"InvoiceDate": "0001-01-01"},
    {"DueDate": "0001-01-01T00:00:00Z", "InvoiceDate": "2024-01-01"},
    {"InvoiceDate": "/Date(253402300800000)/"},  # 10000-01-01
    {"InvoiceDate": "/Date(99999999999999999999)/"},
    {"lines": [{"Quantity": 1, "UnitPrice": 1e308}, {"Quantity": 10, "UnitPrice": 1e308}]},
    {"lines": [{"Quantity": 10**400, "UnitPrice": 1.5}]},
])
def test_edge_dates_and_numbers_get_exacts_error_not_a_crash(exact_sandbox, fields):
    headers = _login(exact_sandbox)
    before = len(exact_sandbox.rows("SalesInvoices", 101))
    answer = _post(exact_sandbox, headers, "salesinvoice/SalesInvoices",
                   _invoice(exact_sandbox, **fields))
    assert answer.status_code == 400, answer.text
    assert _error_text(answer)
    assert len(exact_sandbox.rows("SalesInvoices", 101)) == before  # nothing half-made


def test_non_finite_numbers_are_refused(exact_sandbox):
    headers = {**_login(exact_sandbox), "Content-Type": "application/json"}
    item = exact_sandbox.rows("Items", 101)[0]["ID"]
    account = exact_sandbox.rows("Accounts", 101)[0]["ID"]
    # json.dumps would refuse NaN; Python's json (and so the sandbox's parser) reads it.
    body = json.dumps({"InvoiceTo": account, "SalesInvoiceLines": [
        {"Item": item, "Quantity": "QUANTITY"}]}).replace('"QUANTITY"', "NaN")
    answer = requests.post(f"{exact_sandbox.base_url()}/api/v1/101/salesinvoice/SalesInvoices",
                           data=body, headers=headers, timeout=10)
    assert answer.status_code == 400 and _error_text(answer)


def test_the_last_day_exact_keeps_is_accepted(exact_sandbox):
    headers = _login(exact_sandbox)
    answer = _post(exact_sandbox, headers, "salesinvoice/SalesInvoices",
                   _invoice(exact_sandbox, InvoiceDate="9999-11-01", DueDate="9999-12-31"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["d"]["DueDate"].startswith("/Date(")


@pytest.mark.parametrize("literal", ["datetime'0001-01-01T00:00:00'",
                                     "datetime'9999-12-31T23:59:59'"])
def test_edge_dates_in_a_filter_do_not_crash(exact_sandbox, literal):
    headers = _login(exact_sandbox)
    answer = _get(exact_sandbox, headers, "101/hrm/Costcenters",
                  **{"$filter": f"Modified gt {literal}"})
    assert answer.status_code in (200, 400), answer.text
    assert answer.headers["Content-Type"].startswith("application/json")


def test_a_payment_date_exact_cannot_keep_is_refused(exact_sandbox):
    receivable = exact_sandbox.rows("Receivables", 101)[0]["ID"]
    url = f"{exact_sandbox.url}/_sandbox/data/Receivables/{receivable}/pay"
    refused = requests.post(url, json={"paid_at": "9999-12-31T23:59:59Z"}, timeout=10)
    assert refused.status_code == 400
    headers = _login(exact_sandbox)
    answer = _get(exact_sandbox, headers, "101/bulk/Cashflow/Receivables",
                  **{"$select": "ID,LastPaymentDate"})
    assert answer.status_code == 200  # the feed still answers
