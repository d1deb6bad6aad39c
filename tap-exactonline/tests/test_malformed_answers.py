"""A 2xx answer that is not an OData page is retried, then fails the run: never "no data".

The sandbox's `garble` fault serves the call (rate limit counted), then sends a body cut in
half, or the given string verbatim.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
from tap_exactonline import answers
from tap_exactonline.answers import MalformedAnswerError, page_of
from tap_exactonline.pagination import ODataNextPaginator

XML_FEED = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>Costcenters</title></feed>")
# Every kind of spoiled answer, on every kind of call the tap makes.
SPOILED = [
    ("current/Me", None),  # cut in half
    ("system/Divisions", ""),  # empty
    ("sync/CRM/Accounts", None),
    ("sync/CRM/Contacts", '{"d": {}}'),  # parses, but no results
    ("sync/SalesInvoice/SalesInvoices", '{"error": "half an answer"}'),  # no d
    ("hrm/Costcenters", XML_FEED),  # Exact's default format
    ("bulk/Cashflow/Receivables", '{"d": {"results": "none"}}'),
    ("sync/Deleted", "null"),
]


def _statuses(sandbox, endpoint: str) -> list[int]:
    return [c["status"] for c in sandbox.calls()["calls"] if c["endpoint"] == endpoint]


def test_a_spoiled_answer_on_any_call_is_retried_and_every_record_arrives(
    exact_sandbox, config_for, run_tap
):
    for path, body in SPOILED:
        exact_sandbox.add_fault(path=path, kind="garble", body=body, count=1)
    # No `divisions` setting: current/Me is asked too.
    config = config_for(exact_sandbox, start_date="2000-01-01T00:00:00Z")

    run = run_tap(config)

    division = exact_sandbox.store.companies["nl"].current_division
    expected = {
        "accounts": ("Accounts", "ID"), "contacts": ("Contacts", "ID"),
        "sales_invoices": ("SalesInvoices", "InvoiceID"), "cost_centers": ("Costcenters", "ID"),
        "receivables": ("Receivables", "ID"), "deletions": ("Deleted", "ID"),
    }
    for stream, (entity, key) in expected.items():
        rows = exact_sandbox.rows(entity, division)
        assert rows, entity
        assert sorted(r[key] for r in run.records(stream)) == sorted(r[key] for r in rows), stream
    lines = [line["ID"] for inv in exact_sandbox.rows("SalesInvoices", division)
             for line in inv["SalesInvoiceLines"]]
    assert sorted(r["ID"] for r in run.records("sales_invoice_lines")) == sorted(lines)
    for path, _ in SPOILED:
        assert _statuses(exact_sandbox, path) == [200, 200], path  # asked again once


def test_a_persistently_spoiled_page_fails_the_run_and_keeps_the_bookmark(
    exact_sandbox_factory, config_for, run_tap_process, tmp_path
):
    sandbox = exact_sandbox_factory(accounts_per_division=1100)
    # The first page of accounts is served intact, every later answer is cut in half.
    sandbox.add_fault(path="sync/CRM/Accounts", kind="slow", delay=0, count=1)
    sandbox.add_fault(path="sync/CRM/Accounts", kind="garble", count=50)
    config = config_for(sandbox, divisions=[101])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))

    run = run_tap_process(config_path)

    assert run.returncode != 0
    assert "Malformed 200 answer on GET" in run.logs
    assert config["client_secret"] not in run.logs
    emitted = run.records("accounts")
    assert len(emitted) == 1000  # the intact page, then nothing
    assert _statuses(sandbox, "sync/CRM/Accounts") == [200] * 5  # 1 intact, 1 + max_retries spoiled
    states = [m["value"] for m in run.messages if m["type"] == "STATE"]
    highest = max(r["Timestamp"] for r in emitted)
    for state in states:
        for partition in state.get("bookmarks", {}).get("accounts", {}).get("partitions", []):
            assert (partition.get("replication_key_value") or 0) <= highest
    # Nothing after accounts was read: the run stopped instead of going on with "no data".
    assert not run.records("contacts")


def test_an_answer_without_rows_is_not_an_empty_page(exact_sandbox, config_for, run_tap):
    exact_sandbox.add_fault(path="sync/CRM/Contacts", kind="garble", body='{"d": {}}', count=9)
    with pytest.raises(MalformedAnswerError, match=r"no `d\.results` list"):
        run_tap(config_for(exact_sandbox, divisions=[101]), select=["contacts"])


def test_a_page_is_parsed_once_for_rows_and_next_link(monkeypatch):
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(
        {"d": {"results": [{"ID": "a", "AmountDC": 1.10}], "__next": "https://x/next"}}).encode()
    calls = []
    real = answers._DECODER  # the one parser of pages (msgspec)

    class CountingDecoder:
        def decode(self, content: bytes) -> object:
            calls.append(1)
            return real.decode(content)

    monkeypatch.setattr(answers, "_DECODER", CountingDecoder())

    rows = page_of(response)["results"]
    next_url = ODataNextPaginator().get_next_url(response)

    assert rows == [{"ID": "a", "AmountDC": Decimal("1.10")}]  # amounts exactly as sent
    assert next_url == "https://x/next"
    assert len(calls) == 1
