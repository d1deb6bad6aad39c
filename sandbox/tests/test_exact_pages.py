"""The Exact sandbox renders a page straight from the packed rows (pages.py, issue 9): every
answer is what rendering the store's rows gives, without building each row's dict first.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from exactmc_sandbox.exact import endpoints, pages
from exactmc_sandbox.exact.odata import render
from exactmc_sandbox.exact.pages import json_value
from exactmc_sandbox.exact.sandbox import ExactSandbox
from exactmc_sandbox.exact.store import DataStore

DIVISION = 101
# Text JSON writes with escapes (quote, backslash, controls) or as is (non-ASCII, U+2028).
TRICKY = 'Ünïcødé "B.V." \\ back\tslash\n\x01 € \u2028 / %s 𝄞'


@pytest.fixture(scope="module")
def changed() -> DataStore:
    """A seeded company after the changes a feed must render: updates (dates with
    microseconds), new invoice lines, a paid receivable, deletions, a division move, and a row
    the store could only hold pickled."""
    store = ExactSandbox(accounts_per_division=80).store  # > 64: dictionaries learned
    accounts = list(store.table("Accounts", DIVISION))
    contacts = list(store.table("Contacts", DIVISION))
    invoices = list(store.table("SalesInvoices", DIVISION))
    item = next(iter(store.table("Items", DIVISION)))
    store.update("Accounts", accounts[3], {"Name": "Renamed", "Email": "r@example.com"})
    store.update("Accounts", accounts[5], {"Name": TRICKY})
    store.update("Contacts", contacts[5], {"IsMailingExcluded": True})
    store.delete("Contacts", contacts[7])
    store.delete("Accounts", accounts[9])
    store.update("SalesInvoices", invoices[2], {"YourRef": "x", "SalesInvoiceLines": [
        {"Item": item, "Quantity": 2.0}, {"Item": item, "Quantity": 3.5}]})
    store.create("SalesInvoices", {"Division": DIVISION, "InvoiceTo": accounts[1],
                                   "SalesInvoiceLines": [{"Item": item, "Quantity": 1.0}]})
    store.pay_receivable(next(iter(store.table("Receivables", DIVISION))))
    odd = dict(store.get("Accounts", accounts[4]), Created="not a date")  # held pickled
    store.insert("Accounts", odd)
    assert store.table("Accounts", DIVISION).data[odd["ID"]][:1] == b"\0"
    store.move_division(102)
    store.update("Accounts", next(iter(store.table("Accounts", 102))), {"Name": "Moved"})
    return store


def _expected(store: DataStore, endpoint: endpoints.Endpoint, division: int,
              fields: tuple[str, ...], after: int) -> list[dict[str, Any]]:
    """Rendering the store's rows themselves (the path every answer took before pages.py)."""
    if endpoint.kind == "sync":
        rows = store.sync_rows(endpoint.source, division, after)
    else:
        rows = store.keyed_rows(endpoint.source, division, "")
    return [render(row, fields) for row in rows]


def _served(store: DataStore, endpoint: endpoints.Endpoint, division: int, query: dict[str, str]
            ) -> list[dict[str, Any]]:
    served, count, query = [], 0, dict(query)
    while True:
        page = endpoints.read_page(store, endpoint, division, dict(query))
        served += page.rows
        count += 1
        if page.skiptoken is None:
            assert count > 1 or len(served) <= 7
            return served
        query["$skiptoken"] = page.skiptoken


@pytest.mark.parametrize("path", sorted(endpoints.ENDPOINTS))
def test_every_page_is_the_rendered_rows(changed: DataStore, path: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every endpoint, paged 7 rows at a time, with its default fields, every selectable
    property (documented ones answer null) and a few, after and before the changes: the rows,
    values and dates as the rows rendered give them."""
    monkeypatch.setattr(endpoints, "SYNC_PAGE", 7)
    monkeypatch.setattr(endpoints, "BULK_PAGE", 7)
    monkeypatch.setattr(endpoints, "NORMAL_PAGE", 7)
    endpoint = endpoints.ENDPOINTS[path]
    few = tuple(f for f in endpoint.fields if f in {
        "ID", "InvoiceID", "LineNumber", "Modified", "DeletedDate", "Email", "Quantity",
        "Timestamp", "Code", "LastPaymentDate"})
    selects = [endpoint.fields, endpoint.selectable, few]
    for division in (DIVISION, 102):
        for fields in selects:
            if "SalesInvoiceLines" in fields and endpoint.kind != "normal":
                continue
            query = {"$select": ",".join(fields)}
            expected = _expected(changed, endpoint, division, fields, 0)
            assert expected
            assert _served(changed, endpoint, division, query) == expected, (division, fields)
            if endpoint.kind == "sync":  # from a bookmark halfway
                stamps = [r["Timestamp"] for r in _expected(changed, endpoint, division,
                                                            ("Timestamp",), 0)]
                half = stamps[len(stamps) // 2]
                query["$filter"] = f"Timestamp gt {half}L"
                assert _served(changed, endpoint, division, query) == _expected(
                    changed, endpoint, division, fields, half)
    rows = changed.rows("Accounts", DIVISION)
    assert any(r["Name"] == "Renamed" for r in rows)
    assert any(r["Name"] == TRICKY for r in rows)


@pytest.mark.parametrize("path", sorted(endpoints.ENDPOINTS))
def test_json_pages_are_the_pages_dumped(changed: DataStore, path: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A page read as JSON text (what a JSON client gets, issue 9) is, row for row, exactly
    `json.dumps(row, ensure_ascii=False)` of the page read as dicts: same keys in the same
    order, separators, escapes, numbers and dates, for every select and bookmark."""
    monkeypatch.setattr(endpoints, "SYNC_PAGE", 7)
    monkeypatch.setattr(endpoints, "NORMAL_PAGE", 7)
    endpoint = endpoints.ENDPOINTS[path]
    for division in (DIVISION, 102):
        for fields in (endpoint.fields, endpoint.selectable, tuple(reversed(endpoint.fields))):
            query = {"$select": ",".join(fields)}
            while True:
                page = endpoints.read_page(changed, endpoint, division, dict(query))
                text = endpoints.read_page(changed, endpoint, division, dict(query),
                                           as_json=True)
                assert text.skiptoken == page.skiptoken
                assert text.rows == [json.dumps(r, ensure_ascii=False) for r in page.rows]
                if page.skiptoken is None:
                    break
                query["$skiptoken"] = page.skiptoken


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 10**30, 0.1, -0.0, 1e16, 1e-7, 123.456, 2.5e-310, math.nan,
    math.inf, -math.inf, "", TRICKY, "\x7f\x1f\u00ff", [1, "a", None], {"k": 1.5}])
def test_json_value_is_json_dumps(value: Any) -> None:
    assert json_value(value) == json.dumps(value, ensure_ascii=False)


def test_a_seeded_page_is_written_straight_from_the_packed_rows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The invoice and accounts feeds (the tap's largest reads) never take the slow path of a
    whole row's dict then `render` (and for JSON, `json.dumps`): that path cost 1.9x and 3.2x
    of encoding the page. What each costs now is measured by `bench/run` (the Exact sandbox's
    CPU share), not timed here."""
    store = ExactSandbox(accounts_per_division=400).store
    reads = []
    for path in ("sync/SalesInvoice/SalesInvoices", "sync/CRM/Accounts"):
        endpoint = endpoints.ENDPOINTS[path]
        query = {"$select": ",".join(endpoint.fields), "$filter": "Timestamp gt 1L"}
        page = endpoints.read_page(store, endpoint, DIVISION, query)
        assert len(page.rows) >= 400
        reads.append((endpoint, query, page, [json.dumps(r, ensure_ascii=False)
                                              for r in page.rows]))

    def slow(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a seeded row took the slow path")

    monkeypatch.setattr(pages, "render", slow)
    monkeypatch.setattr(pages.Renderer, "whole", slow)
    monkeypatch.setattr(pages.json, "dumps", slow)
    for endpoint, query, page, dumped in reads:
        assert endpoints.read_page(store, endpoint, DIVISION, query) == page
        assert endpoints.read_page(store, endpoint, DIVISION, query, as_json=True).rows == dumped


FILTERS = {
    "bulk/CRM/Accounts": ["Modified ge datetime'2024-06-01T00:00:00'", "Status eq 'C'"],
    "bulk/CRM/Contacts": ["Modified lt datetime'2024-06-01T12:30:00'"],
    "bulk/Cashflow/Receivables": ["Status eq 30 or Modified gt datetime'2025-01-01T00:00:00'",
                                  "Account eq null or Status eq 20"],
    "bulk/SalesInvoice/SalesInvoices": ["(Status eq 50 and Modified ge datetime'2024-01-01T00:"
                                        "00:00') or Status eq 10"],
    "crm/Accounts": ["Name eq 'RENAMED' or Email eq 'r@example.com'", "Blocked eq true",
                     "Modified ge datetime'2024-01-01T00:00:00' and Country ne 'NL'"],
    "crm/Contacts": ["IsMailingExcluded eq true", "MiddleName ne null and Language eq 'nl'"],
    "hrm/Costcenters": ["Active eq false"],
}


@pytest.mark.parametrize("path", sorted(FILTERS))
def test_filtered_pages_are_the_matching_rows_rendered(changed: DataStore, path: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A `$filter` on a bulk or normal endpoint (dates, nulls, case, and/or) tested on the
    fields it names gives the rows that match as whole rows, rendered."""
    from exactmc_sandbox.exact.odata import parse_filter

    monkeypatch.setattr(endpoints, "SYNC_PAGE", 7)  # bulk pages too
    monkeypatch.setattr(endpoints, "NORMAL_PAGE", 7)
    endpoint = endpoints.ENDPOINTS[path]
    for where in FILTERS[path]:
        terms = parse_filter(where, endpoint.filterable())
        expected = [render(row, endpoint.fields)
                    for row in changed.keyed_rows(endpoint.source, DIVISION, "")
                    if all(term.matches(row) for term in terms)]
        assert expected, where
        query = {"$select": ",".join(endpoint.fields), "$filter": where}
        assert _served(changed, endpoint, DIVISION, query) == expected, where


@pytest.mark.parametrize("rows", [[], ['{"a": 1}'], ['{"a": 1}', '{"b": "é 𝄞"}', '{"c": null}']])
@pytest.mark.parametrize("next_url", [None, 'http://h/nl/api?$skiptoken=guid\'x\'&q="é"'])
def test_a_json_page_answer_is_json_dumps(rows: list[str], next_url: str | None) -> None:
    """The answer built from the rows' texts (empty, one, several non-ASCII; with and without
    `__next`) is byte for byte json.dumps of the page."""
    from exactmc_sandbox.exact.responses import json_page
    from flask import Flask

    with Flask("test").test_request_context():
        body: dict[str, Any] = {"results": [json.loads(row) for row in rows]}
        if next_url is not None:
            body["__next"] = next_url
        answer = json_page(rows, next_url)
        assert answer.get_data() == json.dumps({"d": body}, ensure_ascii=False).encode()
        assert answer.mimetype == "application/json"
