"""Exact sales invoices → Mailchimp e-commerce customers, products and orders.

The value rules (transform/README.md, "Order values") in short: `order_total` is Exact's
invoice amount and `tax_total` its VAT, unsigned; every line goes with its exact amount
(quantity × price = the line's AmountFC, to the cent); lines that run against the invoice's
sign (discount and return lines) are summed into `discount_total`; anything that is not a
real amount dead-letters the invoice instead of sending a wrong order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .amounts import CENT, BadNumber, exact_number, money
from .dates import newest_iso
from .emails import check_email
from .lookup_store import Candidate
from .members import surname, text
from .rejections import Rejection

CREDIT_NOTE_TYPES = {8021, 8024}
DRAFT_STATUS = 10


def customer_id(division: int, account_id: str) -> str:
    return f"exact-{division}-{account_id}"  # ≤ 50 chars: a GUID is 36, divisions ≤ 7 digits


def order_id(division: int, invoice_id: str) -> str:
    return f"exact-{division}-{invoice_id}"


def split_exact_id(value: str) -> tuple[int, str]:
    """(division, Exact ID) back from a customer_id or order_id."""
    _, division, exact_id = value.split("-", 2)
    return int(division), exact_id


def product_id(division: int, line: dict[str, Any]) -> str | None:
    if line.get("Item"):
        return f"exact-{division}-{line['Item']}"
    if text(line.get("ItemCode")):
        return f"exact-{division}-code-{text(line.get('ItemCode'))}"
    return None


def customer_email(account: dict[str, Any] | None, candidates: list[Candidate]) -> str | None:
    """The address Mailchimp files the account's orders under: main contact, else its most
    recently changed contact, else the account's own Email.

    Contacts come first because a customer whose address is not yet in the audience makes
    Mailchimp add it as a member: the company inbox would join the audience beside its people.
    """
    main = [c for c in candidates if c.is_main] or candidates
    if main:
        return max(main, key=lambda c: c.recency).email
    return check_email((account or {}).get("Email")).email


def customer_record(
    division: int, account_id: str, account: dict[str, Any] | None, email: str,
    contact: dict[str, Any] | None,
) -> dict[str, Any]:
    account = account or {}
    contact = contact or {}
    record: dict[str, Any] = {
        "id": customer_id(division, account_id),
        "email": email,
        # False: a new contact becomes transactional; never changes an existing one's status.
        "opt_in_status": False,
        "first_name": text(contact.get("FirstName")),
        "last_name": surname(contact),
        "company": text(account.get("Name")),
    }
    if text(account.get("AddressLine1")):
        record["address"] = {
            "address1": text(account.get("AddressLine1")),
            "address2": text(account.get("AddressLine2")),
            "city": text(account.get("City")),
            "province": text(account.get("State")),
            "postal_code": text(account.get("Postcode")),
            "country_code": text(account.get("Country")),
        }
    return record


def product_record(
    division: int, line: dict[str, Any], unit_price: Decimal | None,
) -> dict[str, Any] | None:
    """The product a sold line refers to. `price` is the line's UnitPrice, Exact's list price
    before line discounts (the flusher keeps the first one sent: see Flusher._add_product)."""
    pid = product_id(division, line)
    if pid is None:
        return None
    title = text(line.get("ItemDescription")) or text(line.get("ItemCode")) or pid
    record: dict[str, Any] = {
        "id": pid,
        "title": title,
        "sku": text(line.get("ItemCode")),
        "description": text(line.get("ItemDescription")),
    }
    if unit_price is not None and unit_price >= 0:  # a negative list price means nothing
        record["price"] = money(unit_price)
    return record


def financial_status(credit: bool, receivables: list[dict[str, Any]]) -> str:
    if credit:
        return "refunded"
    if receivables and all(r.get("IsFullyPaid") for r in receivables):
        return "paid"
    return "pending"


@dataclass
class InvoiceOutputs:
    """What one invoice becomes: its order (None when it cannot be one), the products of the
    lines sent, and what was refused."""

    order: dict[str, Any] | None = None
    products: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class LineNumbers:
    quantity: Decimal
    amount: Decimal  # AmountFC: after line discount, what the line really costs
    unit_price: Decimal | None


def line_numbers(line: dict[str, Any]) -> LineNumbers:
    try:
        unit_price = line.get("UnitPrice")
        return LineNumbers(
            exact_number(line.get("Quantity"), "Quantity"),
            exact_number(line.get("AmountFC"), "AmountFC", whole_cents=True),
            None if unit_price is None else exact_number(unit_price, "UnitPrice"),
        )
    except BadNumber as bad:
        raise BadNumber(f"line {line.get('ID')}: {bad}") from None


def whole_quantity(quantity: Decimal, amount: Decimal) -> tuple[int, Decimal]:
    """(quantity, unit price) for a Mailchimp line, whose quantity must be a whole number,
    such that quantity × price is exactly `amount`. A whole quantity that divides the amount
    into cents is kept (2 × 50.00); otherwise (2.5 hours, 3 for 100.00, a quantity of 0 or
    against the amount's sign) the line goes as 1 × its amount: revenue beats unit count."""
    if quantity >= 1 and quantity == quantity.to_integral_value():
        price = amount / int(quantity)
        if price == price.quantize(CENT):
            return int(quantity), price
    return 1, amount


def invoice_outputs(
    division: int,
    invoice: dict[str, Any],
    lines: list[dict[str, Any]],
    receivables: list[dict[str, Any]],
) -> InvoiceOutputs:
    """One order per invoice, seen from the sign of its total: amounts go to Mailchimp
    unsigned, and an invoice whose total is negative (a credit note, or a normal invoice that
    pays money back) is its own order with financial_status `refunded`."""
    outputs = InvoiceOutputs()
    ordered = sorted(lines, key=lambda row: (row.get("LineNumber") or 0, row["ID"]))
    try:
        total = exact_number(invoice.get("AmountFC"), "AmountFC", whole_cents=True)
        tax = exact_number(invoice.get("VATAmountFC"), "VATAmountFC", whole_cents=True)
        numbers = [line_numbers(line) for line in ordered]
    except BadNumber as bad:
        outputs.rejections.append(Rejection(
            "sales_invoices", division, invoice["InvoiceID"],
            f"{bad}: not a usable amount, the invoice is not sent",
            {"InvoiceNumber": invoice.get("InvoiceNumber")}))
        return outputs
    credit_type = invoice.get("Type") in CREDIT_NOTE_TYPES
    sign = -1 if total < 0 or (total == 0 and credit_type) else 1
    discount = Decimal(0)
    order_lines = []
    for line, number in zip(ordered, numbers, strict=True):
        quantity, amount = sign * number.quantity, sign * number.amount
        if amount < 0:
            # A discount or return line (or, on a credit note, a fee charged): it lowers the
            # order, it is no purchase. Mailchimp's own field for that is discount_total.
            discount -= amount
            continue
        if amount == 0 and quantity <= 0:
            continue  # nothing bought (quantity 0, e.g. a text line or a cancelled position)
        product = product_record(division, line, number.unit_price)
        if product is None:
            outputs.rejections.append(Rejection(
                "sales_invoice_lines", division, line["ID"], "line has no Item or ItemCode",
                {"InvoiceID": invoice["InvoiceID"], "Description": line.get("Description")}))
            continue
        whole, price = whole_quantity(quantity, amount)
        outputs.products.append(product)
        order_lines.append({
            "id": str(line["ID"]),
            "product_id": product["id"],
            "product_variant_id": product["id"],
            "quantity": whole,
            "price": money(price),
        })
    if not order_lines:
        outputs.rejections.append(Rejection(
            "sales_invoices", division, invoice["InvoiceID"],
            "invoice has no lines with an item; Mailchimp needs at least one",
            {"InvoiceNumber": invoice.get("InvoiceNumber")}))
        return outputs
    outputs.order = {
        "id": order_id(division, invoice["InvoiceID"]),
        "customer_id": customer_id(division, invoice["InvoiceTo"]),
        "currency_code": text(invoice.get("Currency")),
        "order_total": money(sign * total),
        "tax_total": money(sign * tax),
        "discount_total": money(discount),
        "financial_status": financial_status(credit_type or sign < 0, receivables),
        "processed_at_foreign": invoice.get("InvoiceDate"),
        "updated_at_foreign": newest_iso(
            invoice.get("Modified"), *(r.get("Modified") for r in receivables)),
        "lines": order_lines,
    }
    return outputs
