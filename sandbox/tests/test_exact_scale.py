"""The Exact sandbox at scale: indexed reads and writes stay exact, and their cost
follows the page or the change, not the amount of data held (issue 9).

Costs: see scale_cost.py.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from exactmc_sandbox.exact import endpoints, indexes
from exactmc_sandbox.exact.dates import SandboxClock
from exactmc_sandbox.exact.model import Company, Division
from exactmc_sandbox.exact.sandbox import ExactSandbox
from exactmc_sandbox.exact.store import DataStore, invoice_rows
from in_threads import failures_in_threads
from scale_cost import MAX_RATIO, cost


# --- Exact: sync feeds and keyed pages --------------------------------------------------------
class Client:
    def __init__(self, sandbox: Any) -> None:
        base = sandbox.base_url("nl")
        self.base = f"{base}/api/v1"
        tokens = requests.post(f"{base}/api/oauth2/token", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token("nl"),
            "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}).json()
        self.headers = {"Accept": "application/json",
                        "Authorization": f"Bearer {tokens['access_token']}"}

    def get(self, path: str, **params: str) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base}/{path}"
        return requests.get(url, params=params or None, headers=self.headers, timeout=10)


def _store(accounts: int, invoices: int = 0) -> DataStore:
    """A division with `accounts` accounts and `invoices` invoices of 3 lines each, inserted
    as the seed does (bare rows: the feeds read only what they render)."""
    store = DataStore(SandboxClock())
    company = Company("c", "C", "nl", 101, "u", "u", "U", "u@x", "nl-NL")
    store.add_company(company, [Division(101, "D", "NL", "EUR", company, 1010,
                                         SandboxClock().now())])
    for n in range(accounts):
        store.insert("Accounts", {"ID": str(uuid.UUID(int=n * 7919 + 1)), "Name": f"A{n}",
                                  "Division": 101})
    for n in range(invoices):
        key = str(uuid.UUID(int=n * 104729 + 3))
        store.insert("SalesInvoices", {
            "InvoiceID": key, "InvoiceNumber": n, "Division": 101, "Status": 20,
            "SalesInvoiceLines": [{"ID": f"{key[:-2]}{k:02d}", "InvoiceID": key,
                                   "LineNumber": k} for k in (1, 2, 3)]})
    return store


def _read_all(store: DataStore, path: str, select: str, **args: str) -> list[dict[str, Any]]:
    endpoint, rows, query = endpoints.ENDPOINTS[path], [], {"$select": select, **args}
    while True:
        page = endpoints.read_page(store, endpoint, 101, dict(query))
        rows += page.rows
        if page.skiptoken is None:
            return rows
        query["$skiptoken"] = page.skiptoken


def _last_page(store: DataStore, path: str, select: str, token: str) -> Callable[[], Any]:
    return lambda: endpoints.read_page(store, endpoints.ENDPOINTS[path], 101,
                                       {"$select": select, "$skiptoken": token})


@pytest.mark.parametrize("path, select, size", [
    ("sync/CRM/Accounts", "ID,Name,Timestamp", 1),
    ("sync/SalesInvoice/SalesInvoices", "ID,InvoiceID,LineNumber,Timestamp", 4),
    ("bulk/CRM/Accounts", "ID,Name", 1),
])
def test_page_cost_follows_the_page_not_the_table(path: str, select: str, size: int) -> None:
    costs = []
    for rows in (1_500, 60_000):
        entity = "SalesInvoices" if "Invoice" in path else "Accounts"
        count = rows // size
        store = _store(*((0, count) if entity == "SalesInvoices" else (count,)))
        everything = _read_all(store, path, select)
        assert len(everything) == rows
        # The page before the end: the feed's bookmark or the key order's last-but-one page.
        after = everything[-endpoints.SYNC_PAGE - 1]
        token = (f"{after['Timestamp']}L" if path.startswith("sync/")
                 else f"guid'{after['ID']}'")
        costs.append(cost(_last_page(store, path, select, token)))
    assert costs[1] / costs[0] < MAX_RATIO, costs


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(endpoints, "SYNC_PAGE", 7)
    return 7


def test_sync_feeds_stay_exact_across_writes_between_pages(exact_sandbox: Any,
                                                           small_pages: int) -> None:
    """A reader that pages on while rows change, move and go sees every row's newest
    version, never a deleted row after its deletion, and the Timestamps only grow."""
    client = Client(exact_sandbox)
    for path, entity, select in (
            ("101/sync/CRM/Contacts", "Contacts", "ID,Email,Timestamp"),
            ("101/sync/SalesInvoice/SalesInvoices", "SalesInvoices",
             "ID,InvoiceID,LineNumber,YourRef,Timestamp")):
        key = "InvoiceID" if entity == "SalesInvoices" else "ID"
        start = [r[key] for r in exact_sandbox.rows(entity, 101)]
        seen: list[dict[str, Any]] = []
        answer = client.get(path, **{"$select": select})
        pages = 0
        while True:
            assert answer.status_code == 200, answer.text
            seen += answer.json()["d"]["results"]
            pages += 1
            read = {r[key] for r in seen}
            unread = [k for k in start if k not in read]
            if pages == 2:  # change one row read and one not yet read, delete another
                change = {"YourRef": "changed"} if entity == "SalesInvoices" else {
                    "Email": "changed@example.com"}
                exact_sandbox.update(entity, seen[0][key], change)
                exact_sandbox.update(entity, unread[0], change)
                exact_sandbox.delete(entity, unread[-1])
                gone = unread[-1]
            next_url = answer.json()["d"].get("__next")
            if not next_url:
                break
            answer = client.get(next_url)
        assert pages > 4
        stamps = [r["Timestamp"] for r in seen]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        final = exact_sandbox.rows(entity, 101)
        assert gone not in {r[key] for r in final}
        # Every current row, in its newest version, is the last version the reader saw.
        last_seen = {}
        for row in seen:
            last_seen[(row[key], row.get("LineNumber"))] = row
        if entity == "SalesInvoices":
            expected = {(i["InvoiceID"], n): i["Timestamp"] if n == 0 else
                        i["SalesInvoiceLines"][n - 1]["Timestamp"]
                        for i in final for n in range(len(i["SalesInvoiceLines"]) + 1)}
        else:
            expected = {(r["ID"], None): r["Timestamp"] for r in final}
        assert {k: v["Timestamp"] for k, v in last_seen.items()} == expected
        assert gone not in read  # unread when it was deleted: never served


def test_bulk_pages_stay_in_key_order_across_creates(exact_sandbox: Any,
                                                     small_pages: int) -> None:
    """Keyed paging as Exact's: a row created while paging shows up iff its key is after the
    page being read."""
    client = Client(exact_sandbox)
    select = {"$select": "ID,InvoiceNumber,Status", "$filter": "Status eq 20"}
    answer = client.get("101/bulk/Cashflow/Receivables", **select)
    first = answer.json()["d"]["results"]
    seen = list(first)
    # Invoices processed while paging: each gets a new open receivable.
    for invoice in [i for i in exact_sandbox.rows("SalesInvoices", 101) if i["Status"] == 20]:
        exact_sandbox.update("SalesInvoices", invoice["InvoiceID"], {"Status": 50})
    while next_url := answer.json()["d"].get("__next"):
        answer = client.get(next_url)
        assert answer.status_code == 200, answer.text
        seen += answer.json()["d"]["results"]
    ids = [r["ID"] for r in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(r["Status"] == 20 for r in seen)
    final = {r["ID"] for r in exact_sandbox.rows("Receivables", 101) if r["Status"] == 20}
    token = first[-1]["ID"]
    assert set(ids) == {r["ID"] for r in first} | {i for i in final if i > token}


def _reference(store: DataStore, source: str, after: int) -> list[tuple[Any, ...]]:
    """What a feed must serve, the slow way: every row above the bookmark, by Timestamp."""
    if source == "Deleted":
        rows: Any = store.deleted_table(101).values()
    elif source == "InvoiceFeed":
        rows = (r for i in store.table("SalesInvoices", 101).values() for r in invoice_rows(i))
    else:
        rows = store.table(source, 101).values()
    return sorted((r["Timestamp"], r["ID"], r.get("LineNumber")) for r in rows
                  if r["Timestamp"] > after)


def test_feeds_and_key_order_match_a_full_scan_after_many_writes(
        small_pages: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of changes (the index compacts its stale entries), deletions, new rows and a
    division move: every feed from every bookmark, and every key-ordered page, is exactly
    what a scan of the whole table gives."""
    monkeypatch.setattr(endpoints, "NORMAL_PAGE", 5)
    monkeypatch.setattr(indexes, "COMPACT_AFTER", 40)  # compact often
    sandbox = ExactSandbox(accounts_per_division=12)
    store, rng = sandbox.store, random.Random(7)
    feeds = {"sync/CRM/Contacts": ("Contacts", "ID,Timestamp"),
             "sync/SalesInvoice/SalesInvoices": ("InvoiceFeed", "ID,LineNumber,Timestamp"),
             "sync/Deleted": ("Deleted", "ID,Timestamp")}

    def check() -> None:
        for path, (source, select) in feeds.items():
            everything = _reference(store, source, 0)
            for after in [0, *(s for s, _, _ in rng.sample(everything, 3))]:
                served = _read_all(store, path, select,
                                   **{"$filter": f"Timestamp gt {after}L"})
                assert [(r["Timestamp"], r["ID"], r.get("LineNumber")) for r in served] == (
                    _reference(store, source, after)), (path, after)
        served = _read_all(store, "bulk/SalesInvoice/SalesInvoiceLines", "ID,Quantity")
        assert [r["ID"] for r in served] == sorted(
            line["ID"] for i in store.table("SalesInvoices", 101).values()
            for line in i["SalesInvoiceLines"])
        served = _read_all(store, "crm/Contacts", "ID",
                           **{"$filter": "IsMailingExcluded eq true"})
        assert [r["ID"] for r in served] == sorted(
            k for k, r in store.table("Contacts", 101).items() if r["IsMailingExcluded"])

    for step in range(2_500):
        contacts = list(store.table("Contacts", 101))
        invoices = list(store.table("SalesInvoices", 101))
        roll = rng.random()
        if roll < 0.6:
            store.update("Contacts", rng.choice(contacts),
                         {"IsMailingExcluded": rng.random() < 0.5})
        elif roll < 0.9:
            change: dict[str, Any] = {"YourRef": f"R{step}"}
            if rng.random() < 0.3:  # new lines: new line IDs
                change["SalesInvoiceLines"] = [{"Item": rng.choice(list(
                    store.table("Items", 101))), "Quantity": float(rng.randint(1, 5))}]
            store.update("SalesInvoices", rng.choice(invoices), change)
        elif roll < 0.95 and len(contacts) > 5:
            store.delete("Contacts", rng.choice(contacts))
        else:
            account = rng.choice(list(store.table("Accounts", 101)))
            store.create("Contacts", {"Division": 101, "Account": account,
                                      "FirstName": "N", "LastName": f"N{step}"})
        if step == 1_200:
            store.move_division(101)
        if step % 500 == 0:
            check()
    check()


def test_rows_are_held_packed_and_reads_are_copies() -> None:
    """Rows are held packed (packed.py): a seeded account with its contacts, invoices, lines and
    receivables in ~1,700 bytes (issue 9: the sandbox held 592 MB at 100k accounts as dicts).
    Seeded, created and changed rows alike read back as the plain dicts they were, and
    changing what a read returned changes nothing held."""
    sandbox = ExactSandbox(accounts_per_division=40)
    store = sandbox.store
    account = next(iter(store.table("Accounts", 101)))
    invoice = next(iter(store.table("SalesInvoices", 101)))
    created = store.create("Contacts", {"Division": 101, "Account": account, "LastName": "N"})
    store.update("SalesInvoices", invoice, {"YourRef": "x", "SalesInvoiceLines": [
        {"Item": next(iter(store.table("Items", 101))), "Quantity": 2.0}]})
    store.delete("Contacts", store.table("Contacts", 101).get(created["ID"])["ID"])
    held = [store.table(entity, 101).data for entity in
            ("Accounts", "Contacts", "SalesInvoices", "Receivables")]
    assert all(type(packed) is bytes for table in held for packed in table.values())
    per_account = sum(len(packed) for table in held for packed in table.values()) / len(held[0])
    assert per_account < 2_000, per_account

    row = store.get("SalesInvoices", invoice)
    assert row["YourRef"] == "x" and row["SalesInvoiceLines"][0]["Quantity"] == 2.0
    assert sandbox.rows("SalesInvoices", 101)[0]["Modified"].endswith("Z")
    row["YourRef"] = "changed by a reader"
    row["SalesInvoiceLines"][0]["Quantity"] = 99.0
    again = store.get("SalesInvoices", invoice)
    assert again["YourRef"] == "x" and again["SalesInvoiceLines"][0]["Quantity"] == 2.0


def test_packing_keeps_every_value_as_it_was() -> None:
    """What the API can store comes back equal and of the same type: dates to the
    microsecond and far from now, GUIDs in any case, look-alikes, shared and unique strings,
    numbers, flags, nulls, nested lines; a row with a value packing does not know survives."""
    from datetime import datetime, timezone

    from exactmc_sandbox.exact.packed import pack, unpack

    guid = str(uuid.UUID(int=12345))
    rows = [
        {"ID": guid, "Created": datetime(2025, 1, 2, 3, 4, 5, 678, tzinfo=timezone.utc),
         "Modified": datetime(1753, 1, 1, tzinfo=timezone.utc), "DueDate": None,
         "InvoiceDate": datetime(9999, 12, 30, tzinfo=timezone.utc), "Code": " " * 17 + "1",
         "Description": "Zoë ‘quoted’ ünïcode", "Status": "C", "Blocked": False,
         "AmountDC": -0.1, "InvoiceNumber": 2**40, "Division": 101, "Email": None,
         "Name": guid.upper(), "Phone": "x" * 36, "Website": "y" * 500,
         "SalesInvoiceLines": [{"ID": guid, "InvoiceID": guid, "Quantity": 1.5,
                                "Description": "Consulting hour", "Created": None}]},
        {"ID": "not-a-guid", "Modified": "2025-01-01", "Odd": b"bytes", "Nested": {"a": [1]}},
        {},
    ]
    for row in rows:
        back = unpack(pack(row))
        assert back == row and list(back) == list(row)
        assert [type(v) for v in back.values()] == [type(v) for v in row.values()]
    assert unpack(pack(rows[0]))["Created"].tzinfo is not None


def test_a_layout_s_rows_are_compressed_with_a_dictionary_learned_from_its_first_rows() -> None:
    """After its first 64 rows a layout's rows are compressed with a preset dictionary learned
    from them (issue 9: 40-55 % smaller rows, peak RSS at 100k accounts): every row still
    reads back as it was, and a seeded account with all its rows is held in far fewer bytes
    than with plain deflate of long rows only."""
    import marshal

    from exactmc_sandbox.exact.packed import pack, unpack, values_of

    probe = f"Probe{uuid.uuid4().hex}"  # a layout of its own: no dictionary yet
    rows = [{"ID": str(uuid.UUID(int=n * 7919 + 5)), "Name": f"Handel Bakker {n} B.V.",
             "Email": f"info@handelbakker{n}.example", probe: n % 3 == 0, "Division": 101}
            for n in range(80)]
    packed = [pack(row) for row in rows]
    assert not any(p[:1] == b"\2" for p in packed[:63])
    assert all(p[:1] == b"\2" for p in packed[64:])
    for row, held in zip(rows, packed, strict=True):
        assert unpack(held) == row and list(unpack(held)) == list(row)
        assert values_of(held)[0] == values_of(packed[0])[0]  # one layout
    plain = [len(marshal.dumps(values_of(p))) for p in packed[64:]]
    assert sum(map(len, packed[64:])) < 0.8 * sum(plain)

    store = ExactSandbox(accounts_per_division=150).store
    held = [store.table(entity, 101).data for entity in
            ("Accounts", "Contacts", "SalesInvoices", "Receivables")]
    per_account = sum(len(p) for table in held for p in table.values()) / len(held[0])
    assert per_account < 1_050, per_account  # 918 (1,280 before); 780 at 400 a division


def test_threads_pack_and_read_a_layout_s_rows_at_once() -> None:
    """The server answers each request on a thread of its own while others write: a layout's
    compressor and decompressor are shared, so no row may come back as another's or garbled."""
    from exactmc_sandbox.exact.packed import pack, unpack

    probe = f"Probe{uuid.uuid4().hex}"
    seed = [pack({"ID": str(uuid.UUID(int=n)), "Name": f"Seed {n}", probe: n}) for n in range(70)]

    def check(t: int) -> list[str]:
        failed = []
        for n in range(1500):
            row = {"ID": str(uuid.UUID(int=t * 10_000 + n)), "Name": f"Bakker {t}-{n}", probe: n}
            if unpack(pack(row)) != row or unpack(seed[n % 70])[probe] != n % 70:
                failed.append(f"{t}-{n}")
        return failed

    assert failures_in_threads(check) == []
