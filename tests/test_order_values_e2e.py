"""Order values end to end (issue 7, item 4): Exact invoices with a fractional quantity, an
a zero line and a discount line, through `meltano run` into the Mailchimp
sandbox; every figure is checked against the independent expectation (e2e_expectation.py)."""

from __future__ import annotations

import e2e_expectation as expectation

DIVISION = 101


def test_order_values_and_catalog_prices_match_exact(pipeline) -> None:
    exact = pipeline.exact
    expected = expectation.expected_state(exact)
    buyer = next(i["InvoiceTo"] for i in exact.rows("SalesInvoices", division=DIVISION)
                 if f"exact-{DIVISION}-{i['InvoiceID']}" in expected.orders)
    items = {i["ID"]: i for i in exact.rows("Items", division=DIVISION)}
    bread, cake, pie = list(items)[:3]
    odd = exact.create("SalesInvoices", {
        "Division": DIVISION, "InvoiceTo": buyer, "Type": 8020, "Status": 50, "Currency": "EUR",
        "SalesInvoiceLines": [
            {"Item": bread, "Quantity": 2.5},  # hours, at the list price
            {"Item": cake, "Quantity": 3.0},
            {"Item": pie, "Quantity": 0.0},  # nothing sold
            {"Item": pie, "Quantity": 1.0, "UnitPrice": -21.0, "Description": "Korting"},
        ],
    })

    pipeline.run()

    expected = expectation.expected_state(exact)
    orders = pipeline.orders()
    assert {oid: expectation.sent_order_values(o) for oid, o in orders.items()} == (
        expected.order_values)
    order = orders[f"exact-{DIVISION}-{odd['InvoiceID']}"]
    bread_amount = round(2.5 * items[bread]["StandardSalesPrice"], 2)
    assert sorted((ln["quantity"], ln["price"]) for ln in order["lines"]) == sorted(
        [(1, bread_amount), (3, items[cake]["StandardSalesPrice"])])
    assert order["discount_total"] == 21.0
    assert order["financial_status"] == "pending"
    # Catalog prices are the items' list prices, whatever a line charged (the discount line
    # put −21.00 on the pie).
    products = pipeline.mailchimp.store("exact-online")["products"]
    for division in expectation.DIVISIONS:
        for item in exact.rows("Items", division=division):
            product = products.get(f"exact-{division}-{item['ID']}")
            if product is not None:
                assert product["variants"][0]["price"] == item["StandardSalesPrice"], item
