"""Sales invoices → customers, products and orders; payment status across runs."""

from __future__ import annotations

from mapper_test_kit import (
    DIVISION,
    account,
    contact,
    dead_letters,
    guid,
    invoice,
    line,
    receivable,
)

ORDER_1 = f"exact-{DIVISION}-{guid(20_001)}"
ORDER_2 = f"exact-{DIVISION}-{guid(20_002)}"
ORDER_3 = f"exact-{DIVISION}-{guid(20_003)}"
CUSTOMER_1 = f"exact-{DIVISION}-{guid(1)}"


def sales() -> dict[str, list[dict]]:
    return {
        "accounts": [account(1)],
        "contacts": [contact(1, 1)],
        "sales_invoices": [
            invoice(1, 1),
            invoice(2, 1),
            invoice(3, 1, Type=8021, AmountFC=-60.5, VATAmountFC=-10.5),  # credit note
        ],
        "sales_invoice_lines": [line(1, 1), line(2, 2),
                                line(3, 3, Quantity=-1.0, AmountFC=-50.0)],
        "receivables": [receivable(1, 1, 1, paid=True), receivable(2, 2, 1, paid=False)],
    }


def test_customer_email_is_a_contact_before_the_company_inbox(pipeline):
    # The main contact has no address: the orders go to the other contact, not to info@, which
    # Mailchimp would otherwise add to the audience as an extra member.
    data = sales() | {"contacts": [
        contact(1, 1, Email=None, IsMainContact=True),
        contact(2, 1, IsMainContact=False),
    ]}
    out = pipeline.run(data)
    assert out.by_key("customers")[CUSTOMER_1]["email"] == "jan.contact2@example.nl"
    assert "info@bakkerij1.nl" not in out.by_key("members", "email")


def test_orders_paid_pending_refunded_with_customer_and_products(pipeline):
    out = pipeline.run(sales())

    orders = out.by_key("orders")
    assert {k: o["financial_status"] for k, o in orders.items()} == {
        ORDER_1: "paid", ORDER_2: "pending", ORDER_3: "refunded"}
    order = orders[ORDER_1]
    assert order["customer_id"] == CUSTOMER_1 and len(CUSTOMER_1) <= 50
    assert (order["currency_code"], order["order_total"]) == ("EUR", 121.0)
    assert order["tax_total"] == 21.0
    assert order["processed_at_foreign"] == "2024-03-10T00:00:00+00:00"
    product_id = f"exact-{DIVISION}-{guid(40_001)}"
    assert order["lines"] == [{"id": guid(30_001), "product_id": product_id,
                               "product_variant_id": product_id, "quantity": 2, "price": 50.0}]
    assert order["discount_total"] == 0
    # Credit notes: unsigned amounts, the sign is carried by financial_status.
    assert (orders[ORDER_3]["order_total"], orders[ORDER_3]["tax_total"]) == (60.5, 10.5)
    assert [(ln["quantity"], ln["price"]) for ln in orders[ORDER_3]["lines"]] == [(1, 50.0)]

    assert out.by_key("customers") == {CUSTOMER_1: {
        "id": CUSTOMER_1, "email": "jan.contact1@example.nl", "opt_in_status": False,
        "first_name": "Jan", "last_name": "van Dijk", "company": "Bakkerij 1 BV",
        "address": {"address1": "Damrak 1", "address2": "2e etage", "city": "Amsterdam",
                    "province": "NH", "postal_code": "1012 LG", "country_code": "NL"},
    }}
    products = out.by_key("products")
    assert products[product_id] == {"id": product_id, "title": "Volkorenbrood 1",
                                    "sku": "BROOD1", "price": 50.0,
                                    "description": "Volkorenbrood 1"}
    # Products and customers go before the orders that refer to them.
    streams = [m["stream"] for m in out if m["type"] == "RECORD"]
    assert streams.index("orders") > max(streams.index("products"), streams.index("customers"))


def test_later_payment_re_emits_only_that_order(pipeline):
    pipeline.run(sales())

    out = pipeline.run({"receivables": [receivable(2, 2, 1, paid=True)]})

    assert [(r["id"], r["financial_status"]) for r in out.records()] == [(ORDER_2, "paid")]
    assert out.records("orders")[0]["updated_at_foreign"] == "2024-03-20T09:00:00+00:00"


def test_receivable_arriving_before_its_invoice_is_joined(pipeline):
    streams = sales()
    out = pipeline.run({"receivables": streams.pop("receivables"), **streams})
    assert out.by_key("orders")[ORDER_1]["financial_status"] == "paid"


def test_invoice_for_account_without_usable_email_is_rejected(pipeline, mapper_config):
    out = pipeline.run({
        "accounts": [account(1), account(2, Email="geen")],
        "contacts": [contact(1, 1)],
        "sales_invoices": [invoice(1, 1), invoice(2, 2)],
        "sales_invoice_lines": [line(1, 1), line(2, 2)],
    })

    assert set(out.by_key("orders")) == {ORDER_1}
    letters = {(d["stream"], d["key"]): d["reason"] for d in dead_letters(mapper_config)}
    assert "no usable email" in letters[("sales_invoices", guid(20_002))]
    assert ("accounts", guid(2)) in letters


def test_draft_invoices_are_not_orders(pipeline):
    out = pipeline.run({
        "accounts": [account(1)], "contacts": [contact(1, 1)],
        "sales_invoices": [invoice(1, 1, Status=10)], "sales_invoice_lines": [line(1, 1)],
    })
    assert out.records("orders") == []
