"""The sandboxes alone at scale: seed time, read cost per 1,000 rows, write cost, peak RSS.

    .venv/bin/python bench/bench_sandboxes.py exact --accounts-per-division 33000
    .venv/bin/python bench/bench_sandboxes.py mailchimp --customers 100000

Mailchimp, per account: a tagged member with an address, a customer, an order of three lines.
At 100k: peak RSS 485 MB held as dicts, 214 MB packed (issue 9).
Exact at 33,334 accounts per division (100k): peak RSS 615 MB as split dicts, 296 MB packed
(seed CPU 23 -> 49 s, reads 3.2 -> 8.3 ms per 1,000 rows: each row decoded as it is read).

Calls the sandboxes' own functions (no HTTP, so the figures are the simulators' CPU, not
werkzeug's). Run one side per process: peak RSS (`ru_maxrss`) is per process.
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import time
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SYNC_SELECT = {
    "sync/CRM/Accounts": "ID,Name,Email,Status,IsMailing,Timestamp",
    "sync/CRM/Contacts": "ID,Account,Email,FirstName,LastName,IsMailingExcluded,Timestamp",
    "sync/SalesInvoice/SalesInvoices": "InvoiceID,ID,LineNumber,AmountDC,InvoiceTo,Timestamp",
    "sync/Deleted": "ID,EntityKey,EntityType,Timestamp",
}


def bench_exact(accounts: int) -> dict[str, Any]:
    from exactmc_sandbox.exact.endpoints import ENDPOINTS, read_page
    from exactmc_sandbox.exact.sandbox import ExactSandbox

    start = _cpu()
    sandbox = ExactSandbox(accounts_per_division=accounts, minutely_limit=10**9,
                           daily_limit=10**9)
    out: dict[str, Any] = {"accounts_per_division": accounts, "seed_cpu_s": _cpu() - start,
                           "rss_after_seed_mb": _rss_mb()}
    store = sandbox.store
    rows = pages = 0
    start = _cpu()
    paths = [*SYNC_SELECT, "bulk/Cashflow/Receivables"]
    for division in (101, 102, 103):
        for path in paths:
            args = {"$select": SYNC_SELECT.get(path, "ID,InvoiceNumber,Status,Modified")}
            if path.startswith("bulk/"):
                args["$filter"] = "Modified gt datetime'2000-01-01T00:00:00'"
            while True:
                page = read_page(store, ENDPOINTS[path], division, dict(args))
                rows += len(page.rows)
                pages += 1
                if page.skiptoken is None:
                    break
                args["$skiptoken"] = page.skiptoken
    read_cpu = _cpu() - start
    # Writes while reading: each change, then the incremental page after it.
    contacts = list(store.table("Contacts", 101))[:200]  # keys: not the whole table decoded
    start = _cpu()
    for key in contacts:
        store.update("Contacts", key, {"IsMailingExcluded": True})
    write_cpu = _cpu() - start
    out.update(rows_read=rows, pages=pages, read_cpu_s=read_cpu,
               read_cpu_ms_per_1000_rows=1e6 * read_cpu / max(rows, 1),
               write_cpu_ms_per_change=1000 * write_cpu / len(contacts),
               peak_rss_mb=_rss_mb())
    return out


def bench_mailchimp(customers: int) -> dict[str, Any]:
    from exactmc_sandbox.mailchimp.ecommerce_api import (
        customer_to_api,
        order_to_api,
        save_customer,
        save_order,
        save_product,
    )
    from exactmc_sandbox.mailchimp.member_ops import MemberWriter
    from exactmc_sandbox.mailchimp.sandbox import MailchimpSandbox
    from exactmc_sandbox.mailchimp.state import Store

    sandbox = MailchimpSandbox()
    state = sandbox.context.state
    store = Store("bench", sandbox.list_id, "Bench", "EUR", "", "")
    state.stores["bench"] = store
    for p in range(40):
        save_product(state, store, f"exact-101-p{p:032d}", {
            "title": f"Product {p}", "variants": [{"id": f"exact-101-p{p:032d}",
                                                   "title": f"Product {p}"}]}, "create")
    audience = state.lists[sandbox.list_id]
    writer = MemberWriter(state, audience)
    tag = writer.tag_id("CC 100 · Sales (101)")
    start = _cpu()
    # Per account what a first sync writes (shapes as the target sends them): a member with an
    # address, tagged; a customer with an address; an order of three lines.
    for n in range(customers):
        email = f"person.{n}@company-{n}.example"
        member, _ = writer.upsert(email, {
            "email_address": email, "status_if_new": "subscribed" if n % 3 else "transactional",
            "language": "nl", "merge_fields": {
                "FNAME": "Anna", "LNAME": f"Bakker{n}", "PHONE": "+31 20 1234567",
                "ADDRESS": {"addr1": f"Stationsweg {n}", "addr2": "", "city": "Utrecht",
                            "state": "Utrecht", "zip": "8505 GM", "country": "NL"}}})
        writer.set_tag(member, tag, True)
        customer = save_customer(state, store, f"c{n}", {
            "email_address": email, "opt_in_status": n % 3 == 0, "first_name": "Anna",
            "last_name": f"Bakker{n}", "company": f"Company {n} B.V.",
            "address": {"address1": f"Stationsweg {n}", "address2": "", "city": "Utrecht",
                        "province": "", "postal_code": "8505 GM", "country_code": "NL"}},
            "put")
        customer_to_api(store, customer)
        order = save_order(state, store, f"o{n}", {
            "customer": {"id": f"c{n}"}, "currency_code": "EUR", "order_total": 10.5 + n,
            "tax_total": 1.82, "discount_total": 0.0, "financial_status": "paid",
            "processed_at_foreign": "2024-10-24T15:29:22Z",
            "updated_at_foreign": "2025-03-29T19:49:16+00:00",
            "lines": [{"id": f"{n:08d}-d8e6-49a5-8433-553c2e1c25b{line}",
                       "product_id": f"exact-101-p{(n + line) % 40:032d}",
                       "product_variant_id": f"exact-101-p{(n + line) % 40:032d}",
                       "quantity": 1, "price": 3.5} for line in range(3)]}, "put")
        order_to_api(store, order)
    write_cpu = _cpu() - start
    # Member listing as the target's read-backs do it: every page, and "changed since now".
    client = sandbox.app.test_client()
    token = base64.b64encode(f"u:{sandbox.api_key}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    url = f"/3.0/lists/{sandbox.list_id}/members"
    since = state.clock.iso()
    fields = "members.email_address,members.status,members.last_changed,total_items"
    start = _cpu()
    served = 0
    for offset in range(0, customers, 1000):
        answer = client.get(url, headers=auth, query_string={
            "since_last_changed": "2000-01-01T00:00:00Z", "count": 1000, "offset": offset,
            "fields": fields})
        served += len(answer.get_json()["members"])
    list_cpu = _cpu() - start
    start = _cpu()
    for _ in range(20):
        client.get(url, headers=auth, query_string={"since_last_changed": since,
                                                    "fields": fields})
    readback_cpu = _cpu() - start
    return {"accounts": customers, "write_cpu_s": write_cpu,
            "write_cpu_ms_per_1000_writes": 1e6 * write_cpu / (3 * customers),
            "members_listed": served,
            "list_cpu_ms_per_1000_members": 1e6 * list_cpu / max(served, 1),
            "readback_cpu_ms_per_call": 1000 * readback_cpu / 20,
            "peak_rss_mb": _rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=("exact", "mailchimp"))
    parser.add_argument("--accounts-per-division", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=10_000)
    args = parser.parse_args()
    wall = time.monotonic()
    if args.side == "exact":
        result = bench_exact(args.accounts_per_division)
    else:
        result = bench_mailchimp(args.customers)
    result["wall_s"] = time.monotonic() - wall
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                      for k, v in result.items()}))


if __name__ == "__main__":
    main()
