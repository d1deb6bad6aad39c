"""Order values stay true (issue 7, item 4): quantities, signs, discounts, catalog prices and
absurd numbers. Every expected value below is worked out by hand from the Exact rows in the
test, never through the mapper's own functions."""

from __future__ import annotations

import math

import pytest
from mapper_test_kit import (
    DIVISION,
    account,
    contact,
    dead_letters,
    guid,
    invoice,
    line,
)

ORDER_1 = f"exact-{DIVISION}-{guid(20_001)}"
ORDER_2 = f"exact-{DIVISION}-{guid(20_002)}"
BREAD = f"exact-{DIVISION}-{guid(40_001)}"
CAKE = f"exact-{DIVISION}-{guid(40_002)}"


def customer() -> dict[str, list[dict]]:
    return {"accounts": [account(1)], "contacts": [contact(1, 1)]}


def one_invoice(lines: list[dict], **header) -> dict[str, list[dict]]:
    return customer() | {"sales_invoices": [invoice(1, 1, **header)],
                         "sales_invoice_lines": lines}


def sent_lines(order: dict) -> dict[str, tuple[int, float]]:
    return {ln["id"]: (ln["quantity"], ln["price"]) for ln in order["lines"]}


def line_revenue(order: dict) -> float:
    return round(sum(ln["quantity"] * ln["price"] for ln in order["lines"]), 2)


def negative_zeros(value: object) -> list[float]:
    if isinstance(value, dict):
        return negative_zeros(list(value.values()))
    if isinstance(value, list):
        return [zero for item in value for zero in negative_zeros(item)]
    is_negative_zero = isinstance(value, float) and value == 0 and math.copysign(1, value) < 0
    return [value] if is_negative_zero else []


def test_fractional_and_indivisible_quantities_keep_the_line_amount(pipeline):
    # 2.5 hours at 40.00 = 100.00; 3 loaves for 100.00 (33.333... each); 4 cakes for 100.00.
    out = pipeline.run(one_invoice([
        line(1, 1, Quantity=2.5, UnitPrice=40.0, AmountFC=100.0),
        line(4, 1, Quantity=3.0, UnitPrice=33.3333, AmountFC=100.0, LineNumber=2),
        line(2, 1, Quantity=4.0, UnitPrice=25.0, AmountFC=100.0, LineNumber=3),
    ], AmountFC=363.0, VATAmountFC=63.0, AmountFCExclVat=300.0))

    order = out.by_key("orders")[ORDER_1]
    # Whole quantities that divide the amount into cents stay; otherwise 1 × the line amount.
    assert sent_lines(order) == {guid(30_001): (1, 100.0), guid(30_004): (1, 100.0),
                                 guid(30_002): (4, 25.0)}
    assert all(isinstance(ln["quantity"], int) for ln in order["lines"])
    assert line_revenue(order) == 300.0
    assert (order["order_total"], order["tax_total"], order["discount_total"]) == (363.0, 63.0, 0)


def test_zero_quantity_line_is_left_out_not_sent_as_one(pipeline):
    out = pipeline.run(one_invoice([
        line(1, 1, Quantity=2.0, UnitPrice=50.0, AmountFC=100.0),
        line(2, 1, Quantity=0.0, UnitPrice=95.0, AmountFC=0.0, LineNumber=2),
    ]))
    order = out.by_key("orders")[ORDER_1]
    assert sent_lines(order) == {guid(30_001): (2, 50.0)}
    assert order["order_total"] == 121.0
    # Nothing of the cake was sold: no product made for it either.
    assert set(out.by_key("products")) == {BREAD}


def test_free_item_is_a_line_at_price_zero(pipeline):
    out = pipeline.run(one_invoice([
        line(1, 1, Quantity=2.0, UnitPrice=50.0, AmountFC=100.0),
        line(2, 1, Quantity=1.0, UnitPrice=0.0, AmountFC=-0.0, LineNumber=2),
    ]))
    order = out.by_key("orders")[ORDER_1]
    assert sent_lines(order) == {guid(30_001): (2, 50.0), guid(30_002): (1, 0.0)}
    assert not negative_zeros(out.records())  # no -0.0 reaches Mailchimp


def test_discount_and_return_lines_reduce_a_normal_invoice(pipeline, mapper_config):
    # 2 × 100.00 bread, a −21.00 discount line and one returned cake (−1 × 50.00):
    # excl. VAT 200 − 21 − 50 = 129.00, VAT 21 % = 27.09, total 156.09.
    out = pipeline.run(one_invoice([
        line(1, 1, Quantity=2.0, UnitPrice=100.0, AmountFC=200.0),
        line(4, 1, Item=None, ItemCode=None, ItemDescription=None, Description="Korting",
             Quantity=1.0, UnitPrice=-21.0, AmountFC=-21.0, LineNumber=2),
        line(2, 1, Quantity=-1.0, UnitPrice=50.0, AmountFC=-50.0, LineNumber=3),
    ], AmountFC=156.09, VATAmountFC=27.09, AmountFCExclVat=129.0))

    order = out.by_key("orders")[ORDER_1]
    assert order["financial_status"] == "pending"
    assert sent_lines(order) == {guid(30_001): (2, 100.0)}
    assert order["discount_total"] == 71.0
    assert (order["order_total"], order["tax_total"]) == (156.09, 27.09)
    # The order adds up: lines − discount + tax = Exact's invoice amount.
    assert round(line_revenue(order) - order["discount_total"] + order["tax_total"], 2) == 156.09
    # A return is not a purchase of the cake; the discount line needs no item.
    assert set(out.by_key("products")) == {BREAD}
    assert dead_letters(mapper_config) == []


def test_a_negative_line_is_never_sent_as_a_positive_purchase(pipeline, mapper_config):
    # The reported case: an ordinary invoice line of −121 became a +121 pending order.
    out = pipeline.run(one_invoice([
        line(1, 1, Quantity=-1.0, UnitPrice=100.0, AmountFC=-100.0),
    ], AmountFC=-121.0, VATAmountFC=-21.0, AmountFCExclVat=-100.0))

    order = out.by_key("orders")[ORDER_1]
    # Money flowed back: the invoice is a credit in substance, sent unsigned like a credit note.
    assert order["financial_status"] == "refunded"
    assert (order["order_total"], order["tax_total"], order["discount_total"]) == (121.0, 21.0, 0)
    assert sent_lines(order) == {guid(30_001): (1, 100.0)}
    assert dead_letters(mapper_config) == []


def test_credit_note_is_refunded_with_unsigned_values(pipeline):
    out = pipeline.run(one_invoice([
        line(1, 1, Quantity=-3.0, UnitPrice=20.0, AmountFC=-60.0),
        line(2, 1, Quantity=1.0, UnitPrice=10.0, AmountFC=10.0, LineNumber=2),  # fee kept
    ], Type=8021, AmountFC=-60.5, VATAmountFC=-10.5, AmountFCExclVat=-50.0))

    order = out.by_key("orders")[ORDER_1]
    assert order["financial_status"] == "refunded"
    assert (order["order_total"], order["tax_total"]) == (60.5, 10.5)
    assert sent_lines(order) == {guid(30_001): (3, 20.0)}
    assert order["discount_total"] == 10.0  # the line that runs against the credit
    assert round(line_revenue(order) - order["discount_total"] + order["tax_total"], 2) == 60.5


def test_one_cheap_line_does_not_rewrite_the_catalog_price(pipeline):
    pipeline.run(one_invoice([line(1, 1, Quantity=1.0, UnitPrice=95.0, AmountFC=95.0)],
                             AmountFC=114.95, VATAmountFC=19.95))

    out = pipeline.run({
        "sales_invoices": [invoice(2, 1, AmountFC=12.1, VATAmountFC=2.1)],
        "sales_invoice_lines": [line(4, 2, Quantity=1.0, UnitPrice=10.0, AmountFC=10.0)],
    })

    # The cheap sale is an order line at 10.00; the product (unchanged) is not sent again.
    assert sent_lines(out.by_key("orders")[ORDER_2]) == {guid(30_004): (1, 10.0)}
    assert "products" not in {m.get("stream") for m in out if m["type"] == "RECORD"}


def test_catalog_price_is_the_list_price_not_the_discounted_line(pipeline):
    # 2 × 95.00 list price with 10 % line discount: 171.00 on the line.
    out = pipeline.run(one_invoice([line(1, 1, Quantity=2.0, UnitPrice=95.0, AmountFC=171.0)],
                                   AmountFC=206.91, VATAmountFC=35.91))
    assert out.by_key("products")[BREAD]["price"] == 95.0
    assert sent_lines(out.by_key("orders")[ORDER_1]) == {guid(30_001): (2, 85.5)}


@pytest.mark.parametrize(("fields", "named"), [
    ({"UnitPrice": 1e300}, "UnitPrice"),
    ({"AmountFC": float("nan")}, "AmountFC"),
    ({"Quantity": float("inf")}, "Quantity"),
    ({"AmountFC": 100.005}, "AmountFC"),
    ({"AmountFC": None}, "AmountFC"),
    ({"Quantity": "twee"}, "Quantity"),
])
def test_absurd_line_values_are_dead_letters_and_the_run_goes_on(
        pipeline, mapper_config, fields, named):
    out = pipeline.run(customer() | {
        "sales_invoices": [invoice(1, 1), invoice(2, 1)],
        "sales_invoice_lines": [line(1, 1, **fields), line(2, 2)],
    })

    assert set(out.by_key("orders")) == {ORDER_2}
    assert set(out.by_key("products")) == {CAKE}
    letters = {(d["stream"], d["key"]): d for d in dead_letters(mapper_config)}
    letter = letters[("sales_invoices", guid(20_001))]
    assert named in letter["reason"] and guid(30_001) in letter["reason"]


@pytest.mark.parametrize("fields", [
    {"AmountFC": 1e300}, {"VATAmountFC": float("nan")}, {"AmountFC": 121.001},
    {"AmountFC": None},
])
def test_absurd_invoice_amounts_are_dead_letters(pipeline, mapper_config, fields):
    out = pipeline.run(customer() | {
        "sales_invoices": [invoice(1, 1, **fields), invoice(2, 1)],
        "sales_invoice_lines": [line(1, 1), line(2, 2)],
    })
    assert set(out.by_key("orders")) == {ORDER_2}
    reasons = {d["key"]: d["reason"] for d in dead_letters(mapper_config)}
    assert next(iter(fields)) in reasons[guid(20_001)]


def test_remembered_numbers_read_as_fresh_ones() -> None:
    """Issue 9: accepted floats are remembered; a remembered value reads exactly as a fresh
    one, whichever zero came first, and the cents rule still refuses what it refused."""
    from decimal import Decimal

    from mapper_exact_mailchimp import amounts

    amounts._KNOWN.clear()
    for _ in range(2):  # fresh, then remembered
        for zero in (-0.0, 0.0, -0.0):
            assert str(amounts.exact_number(zero, "AmountFC", whole_cents=True)) == "0.0"
        assert amounts.exact_number(2.5, "Quantity") == Decimal("2.5")
        assert amounts.exact_number(0.001, "UnitPrice") == Decimal("0.001")
        with pytest.raises(amounts.BadNumber, match="fractions of a cent"):
            amounts.exact_number(0.001, "AmountFC", whole_cents=True)
        with pytest.raises(amounts.BadNumber, match="not a number"):
            amounts.exact_number(math.nan, "AmountFC", whole_cents=True)
    assert (0.001, True) not in amounts._KNOWN
