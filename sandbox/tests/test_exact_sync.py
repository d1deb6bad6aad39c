"""The data endpoints over real HTTP: $select, paging, Timestamp bookmarks, the invoice feed,
deletions, bulk and normal endpoints, divisions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from exactmc_sandbox.exact.dates import AMSTERDAM, from_odata_date


class Client:
    """The least a client does: log in once, then GET with JSON and a bearer token."""

    def __init__(self, sandbox, region="nl"):
        self.sandbox = sandbox
        self.base = f"{sandbox.base_url(region)}/api/v1"
        tokens = requests.post(f"{sandbox.base_url(region)}/api/oauth2/token", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token(region),
            "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}).json()
        self.headers = {"Accept": "application/json",
                        "Authorization": f"Bearer {tokens['access_token']}"}

    def get(self, path, **params):
        url = path if path.startswith("http") else f"{self.base}/{path}"
        return requests.get(url, params=params or None, headers=self.headers, timeout=10)

    def all(self, path, **params):
        """Follow __next verbatim; returns (rows, number of pages)."""
        rows, pages, answer = [], 0, self.get(path, **params)
        while True:
            assert answer.status_code == 200, answer.text
            pages += 1
            rows += answer.json()["d"]["results"]
            next_url = answer.json()["d"].get("__next")
            if not next_url:
                return rows, pages
            answer = self.get(next_url)


@pytest.fixture
def client(exact_sandbox):
    return Client(exact_sandbox)


def _amsterdam_an_hour_ago() -> str:
    """A `datetime'...'` literal: Exact filters take Amsterdam local time without a zone."""
    since = datetime.now(AMSTERDAM) - timedelta(hours=1)
    return since.replace(tzinfo=None, microsecond=0).isoformat()


def _error_text(answer):
    return answer.json()["error"]["message"]["value"]


@pytest.mark.parametrize("path", ["sync/CRM/Accounts", "bulk/CRM/Contacts",
                                  "bulk/Cashflow/Receivables", "sync/Deleted"])
def test_select_is_mandatory_on_sync_and_bulk(client, path):
    answer = client.get(f"101/{path}")
    assert answer.status_code == 400
    assert set(answer.json()["error"]) == {"code", "message"}
    assert "$select" in _error_text(answer)


def test_response_has_only_selected_fields(client):
    rows = client.get("101/sync/CRM/Accounts", **{"$select": "ID,Name,Timestamp"}).json()
    assert rows["d"]["results"]
    assert all(set(r) == {"ID", "Name", "Timestamp"} for r in rows["d"]["results"])
    unknown = client.get("101/sync/CRM/Accounts", **{"$select": "ID,Nmae"})
    assert unknown.status_code == 400 and "Nmae" in _error_text(unknown)


def test_sync_pages_of_1000_follow_next_to_every_row(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(accounts_per_division=800)
    client = Client(sandbox)
    first = client.get("101/sync/CRM/Contacts",
                       **{"$select": "ID,Email,Timestamp", "$filter": "Timestamp gt 1L"})
    assert len(first.json()["d"]["results"]) == 1000
    next_url = first.json()["d"]["__next"]
    assert next_url.startswith(f"{sandbox.url}/nl/api/v1/101/sync/CRM/Contacts?")
    query = parse_qs(urlparse(next_url).query)
    assert query["$select"] == ["ID,Email,Timestamp"] and "$skiptoken" in query

    rows, pages = client.all("101/sync/CRM/Contacts",
                             **{"$select": "ID,Email,Timestamp", "$filter": "Timestamp gt 1L"})
    expected = sandbox.rows("Contacts", 101)
    assert len(expected) > 1000 and pages == -(-len(expected) // 1000)
    assert sorted(r["ID"] for r in rows) == sorted(r["ID"] for r in expected)
    stamps = [r["Timestamp"] for r in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_timestamp_bookmark_returns_only_changes(exact_sandbox, client):
    select = {"$select": "ID,Name,Modified,Timestamp"}
    rows, _ = client.all("101/sync/CRM/Accounts", **select)
    bookmark = max(r["Timestamp"] for r in rows)
    nothing = client.get("101/sync/CRM/Accounts", **select,
                         **{"$filter": f"Timestamp gt {bookmark}L"})
    assert nothing.json()["d"]["results"] == []

    target = rows[0]
    exact_sandbox.update("Accounts", target["ID"], {"Name": "Renamed B.V."})
    created = exact_sandbox.create("Accounts", {"Division": 101, "Name": "Nieuw B.V."})
    changed = client.get("101/sync/CRM/Accounts", **select,
                         **{"$filter": f"Timestamp gt {bookmark}L"}).json()["d"]["results"]
    assert [r["ID"] for r in changed] == [target["ID"], created["ID"]]
    assert changed[0]["Name"] == "Renamed B.V." and changed[0]["Timestamp"] > bookmark
    assert from_odata_date(changed[0]["Modified"]) > from_odata_date(target["Modified"])
    # Other divisions count their own row versions and are untouched.
    other = client.all("102/sync/CRM/Accounts", **select)[0]
    assert all(r["Name"] != "Renamed B.V." for r in other)


def test_sync_allows_only_timestamp_filter(client):
    answer = client.get("101/sync/CRM/Accounts",
                        **{"$select": "ID", "$filter": "Modified gt datetime'2024-01-01T00:00:00'"})
    assert answer.status_code == 400


def test_invoice_feed_has_header_and_lines_and_changes_restamp_all_rows(exact_sandbox, client):
    select = {"$select": "ID,InvoiceID,LineNumber,InvoiceNumber,AmountFC,ItemCode,"
                         "CostCenter,CostCenterDescription,Currency,Timestamp"}
    rows, _ = client.all("101/sync/SalesInvoice/SalesInvoices", **select)
    invoices = exact_sandbox.rows("SalesInvoices", 101)
    assert len(rows) == sum(1 + len(i["SalesInvoiceLines"]) for i in invoices)
    by_invoice: dict[str, list[dict]] = {}
    for row in rows:
        by_invoice.setdefault(row["InvoiceID"], []).append(row)
    for invoice in invoices:
        group = by_invoice[invoice["InvoiceID"]]
        assert [r["LineNumber"] for r in group] == list(range(len(group)))
        header = group[0]
        assert header["ID"] == invoice["InvoiceID"] and header["ItemCode"] is None
        assert all(r["ItemCode"] and r["CostCenterDescription"] for r in group[1:])

    bookmark = max(r["Timestamp"] for r in rows)
    target = invoices[0]
    exact_sandbox.update("SalesInvoices", target["InvoiceID"], {"YourRef": "changed"})
    changed = client.get("101/sync/SalesInvoice/SalesInvoices", **select,
                         **{"$filter": f"Timestamp gt {bookmark}L"}).json()["d"]["results"]
    assert {r["InvoiceID"] for r in changed} == {target["InvoiceID"]}
    assert len(changed) == 1 + len(target["SalesInvoiceLines"])


def test_deletion_appears_in_sync_deleted(exact_sandbox, client):
    select = {"$select": "ID,EntityKey,EntityType,DeletedDate,Division,Timestamp"}
    before, _ = client.all("101/sync/Deleted", **select)
    assert before, "the seed carries earlier deletions"
    bookmark = max(r["Timestamp"] for r in before)
    contact = exact_sandbox.rows("Contacts", 101)[0]
    exact_sandbox.delete("Contacts", contact["ID"])
    new = client.get("101/sync/Deleted", **select,
                     **{"$filter": f"Timestamp gt {bookmark}L"}).json()["d"]["results"]
    assert [(r["EntityKey"], r["EntityType"], r["Division"]) for r in new] == [
        (contact["ID"], 5, 101)]
    remaining, _ = client.all("101/bulk/CRM/Contacts", **{"$select": "ID"})
    assert contact["ID"] not in {r["ID"] for r in remaining}


def test_bulk_receivables_filter_on_modified_and_payment(exact_sandbox, client):
    select = "ID,Account,InvoiceNumber,EntryNumber,AmountDC,TransactionAmountDC,Currency," \
             "IsFullyPaid,LastPaymentDate,Status,Modified,Division"
    rows, _ = client.all("101/bulk/Cashflow/Receivables", **{"$select": select})
    assert {r["IsFullyPaid"] for r in rows} == {True, False}
    open_row = next(r for r in rows if not r["IsFullyPaid"])
    exact_sandbox.pay_receivable(open_row["ID"])
    # Exact filters are in Amsterdam local time: ask for "changed in the last hour".
    since_text = _amsterdam_an_hour_ago()
    changed = client.get("101/bulk/Cashflow/Receivables", **{
        "$select": select, "$filter": f"Modified gt datetime'{since_text}'"}).json()["d"]["results"]
    assert [r["ID"] for r in changed] == [open_row["ID"]]
    assert changed[0]["IsFullyPaid"] is True and changed[0]["LastPaymentDate"].startswith("/Date(")
    by_invoice = client.get("101/bulk/Cashflow/Receivables", **{
        "$select": "ID", "$filter": f"InvoiceNumber eq {open_row['InvoiceNumber']}"})
    assert [r["ID"] for r in by_invoice.json()["d"]["results"]] == [open_row["ID"]]


def test_dates_encode_amsterdam_wall_clock(exact_sandbox, client):
    account = exact_sandbox.rows("Accounts", 101)[0]
    row = client.get("101/crm/Accounts", **{"$filter": f"ID eq guid'{account['ID']}'",
                                           "$select": "ID,Modified"}).json()["d"]["results"][0]
    ms = int(row["Modified"][6:-2])
    modified = datetime.fromisoformat(account["Modified"].replace("Z", "+00:00"))
    wall = modified.astimezone(AMSTERDAM).replace(tzinfo=None)
    assert datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None) == wall


def test_normal_endpoint_pages_of_60_and_keyed_get(exact_sandbox_factory):
    sandbox = exact_sandbox_factory(accounts_per_division=70)
    client = Client(sandbox)
    first = client.get("101/crm/Accounts", **{"$select": "ID,Code"}).json()["d"]
    assert len(first["results"]) == 60 and "$skiptoken=guid" in first["__next"]
    rows, pages = client.all("101/crm/Accounts", **{"$select": "ID,Code"})
    assert pages == 2 and len(rows) == 70
    assert all(len(r["Code"]) == 18 and r["Code"] == r["Code"].strip().rjust(18) for r in rows)
    one = client.get(f"101/crm/Accounts(guid'{rows[0]['ID']}')")
    assert one.status_code == 200 and one.json()["d"]["ID"] == rows[0]["ID"]
    assert client.get(f"102/crm/Accounts(guid'{rows[0]['ID']}')").status_code == 404


def test_costcenters_crud_and_modified_filter(exact_sandbox, client):
    base = f"{client.base}/101/hrm/Costcenters"
    rows = client.get("101/hrm/Costcenters").json()["d"]["results"]
    assert {r["Active"] for r in rows} == {True, False}
    created = requests.post(base, json={"Code": "500", "Description": "Events"}, timeout=10,
                            headers=client.headers)
    assert created.status_code == 201
    key = created.json()["d"]["ID"]
    assert requests.put(f"{base}(guid'{key}')", json={"Description": "Events & fairs"},
                        headers=client.headers, timeout=10).status_code == 204
    since_text = _amsterdam_an_hour_ago()
    recent = client.get("101/hrm/Costcenters",
                        **{"$filter": f"Modified gt datetime'{since_text}'"}).json()["d"]["results"]
    assert [(r["ID"], r["Description"]) for r in recent] == [(key, "Events & fairs")]
    bad = requests.post(base, json={"Description": "no code"}, headers=client.headers, timeout=10)
    assert bad.status_code == 400 and "Code" in _error_text(bad)
    assert requests.delete(f"{base}(guid'{key}')", headers=client.headers,
                           timeout=10).status_code == 204
    assert key not in {r["ID"] for r in client.all("101/hrm/Costcenters")[0]}


def test_paths_are_case_sensitive(client):
    assert client.get("101/hrm/CostCenters").status_code == 404
    assert client.get("101/hrm/Costcenters").status_code == 200


def test_without_json_accept_header_the_answer_is_xml(exact_sandbox, client):
    answer = requests.get(f"{client.base}/101/logistics/Items", timeout=10,
                          headers={"Authorization": client.headers["Authorization"]})
    assert answer.status_code == 200
    assert "xml" in answer.headers["Content-Type"]
    with pytest.raises(ValueError):
        answer.json()


def test_me_divisions_and_wrong_division(exact_sandbox, client):
    me = client.get("current/Me").json()["d"]["results"][0]
    assert me["CurrentDivision"] == 101
    divisions = client.get("101/system/Divisions").json()["d"]["results"]
    assert [(d["Code"], d["Country"]) for d in divisions] == [(101, "NL"), (102, "BE"), (103, "DE")]
    assert divisions[0]["DivisionMoveDate"] is None
    assert divisions[2]["DivisionMoveDate"].startswith("/Date(")

    wrong = client.get("201/sync/CRM/Accounts", **{"$select": "ID"})
    assert wrong.status_code == 403 and _error_text(wrong) == "Forbidden - WrongDivision"
    assert Client(exact_sandbox, "be").get("201/crm/Accounts").status_code == 200


def test_division_move_sets_date_and_voids_bookmarks(exact_sandbox, client):
    select = {"$select": "ID,Timestamp"}
    rows, _ = client.all("102/sync/CRM/Accounts", **select)
    bookmark = max(r["Timestamp"] for r in rows)
    exact_sandbox.move_division(102)
    divisions = client.get("101/system/Divisions").json()["d"]["results"]
    moved = next(d for d in divisions if d["Code"] == 102)
    assert moved["DivisionMoveDate"] is not None
    # A new row after the move is invisible to the stale bookmark: only a full resync finds it.
    created = exact_sandbox.create("Accounts", {"Division": 102, "Name": "Na verhuizing BV"})
    stale = client.get("102/sync/CRM/Accounts", **select,
                       **{"$filter": f"Timestamp gt {bookmark}L"})
    assert stale.json()["d"]["results"] == []
    resync, _ = client.all("102/sync/CRM/Accounts", **select, **{"$filter": "Timestamp gt 1L"})
    assert created["ID"] in {r["ID"] for r in resync} and len(resync) == len(rows) + 1


def test_a_json_page_is_json_dumps_of_its_answer(exact_sandbox_factory):
    """Over HTTP a JSON page (written from the rows' JSON texts, issue 9) is byte for byte
    `json.dumps(answer, ensure_ascii=False)`: separators, escapes, dates, numbers, `__next`."""
    import json

    from exactmc_sandbox.exact import endpoints

    sandbox = exact_sandbox_factory(accounts_per_division=300)
    account = sandbox.rows("Accounts", 101)[0]["ID"]
    sandbox.update("Accounts", account, {"Name": 'Ünï "q" \\ \t\x01 € \u2028 𝄞'})
    client = Client(sandbox)
    query = {"$select": "ID,Name,Email,Created,Modified,Status,Timestamp",
             "$filter": "Timestamp gt 1L"}
    for path in ("sync/CRM/Accounts", "sync/SalesInvoice/SalesInvoices"):
        if "Invoice" in path:
            query["$select"] = "ID,InvoiceID,LineNumber,AmountDC,Quantity,InvoiceDate,Timestamp"
        answer = client.get(f"101/{path}", **query)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        page = endpoints.read_page(sandbox.store, endpoints.ENDPOINTS[path], 101, dict(query))
        assert body["d"]["results"] == page.rows and len(page.rows) >= 300
        assert ("__next" in body["d"]) == ("Invoice" in path)  # 1,000 rows and more
        assert answer.content == json.dumps(body, ensure_ascii=False).encode()
    stamp = next(r["Timestamp"] for r in sandbox.rows("Accounts", 101) if r["ID"] == account)
    updated = client.get("101/sync/CRM/Accounts", **{"$select": "ID,Name,Timestamp",
                                                      "$filter": f"Timestamp gt {stamp - 1}L"})
    assert updated.content == json.dumps(updated.json(), ensure_ascii=False).encode()
    assert any(r["ID"] == account for r in updated.json()["d"]["results"])
