"""Exact sales invoices → Mailchimp e-commerce customers, products and orders."""

from __future__ import annotations

from typing import Any

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


def product_record(division: int, line: dict[str, Any]) -> dict[str, Any] | None:
    pid = product_id(division, line)
    if pid is None:
        return None
    title = text(line.get("ItemDescription")) or text(line.get("ItemCode")) or pid
    return {
        "id": pid,
        "title": title,
        "sku": text(line.get("ItemCode")),
        "price": money(abs(number(line.get("UnitPrice")))),
        "description": text(line.get("ItemDescription")),
    }


def financial_status(invoice: dict[str, Any], receivables: list[dict[str, Any]]) -> str:
    if invoice.get("Type") in CREDIT_NOTE_TYPES:
        return "refunded"
    if receivables and all(r.get("IsFullyPaid") for r in receivables):
        return "paid"
    return "pending"


def order_record(
    division: int,
    invoice: dict[str, Any],
    lines: list[dict[str, Any]],
    receivables: list[dict[str, Any]],
) -> tuple[dict[str, Any] | None, list[Rejection]]:
    """One order per invoice. Amounts go to Mailchimp unsigned: a credit note (negative in
    Exact) is its own order with financial_status `refunded`."""
    rejections: list[Rejection] = []
    order_lines = []
    for line in sorted(lines, key=lambda row: (row.get("LineNumber") or 0, row["ID"])):
        pid = product_id(division, line)
        if pid is None:
            rejections.append(Rejection(
                "sales_invoice_lines", division, line["ID"], "line has no Item or ItemCode",
                {"InvoiceID": invoice["InvoiceID"], "Description": line.get("Description")}))
            continue
        order_lines.append({
            "id": str(line["ID"]),
            "product_id": pid,
            "product_variant_id": pid,
            # Mailchimp wants whole quantities; the exact amount lives in order_total.
            "quantity": max(1, round(abs(number(line.get("Quantity"))))),
            "price": money(abs(number(line.get("UnitPrice")))),
        })
    if not order_lines:
        rejections.append(Rejection(
            "sales_invoices", division, invoice["InvoiceID"],
            "invoice has no lines with an item; Mailchimp needs at least one",
            {"InvoiceNumber": invoice.get("InvoiceNumber")}))
        return None, rejections
    record = {
        "id": order_id(division, invoice["InvoiceID"]),
        "customer_id": customer_id(division, invoice["InvoiceTo"]),
        "currency_code": text(invoice.get("Currency")),
        "order_total": money(abs(number(invoice.get("AmountFC")))),
        "tax_total": money(abs(number(invoice.get("VATAmountFC")))),
        "financial_status": financial_status(invoice, receivables),
        "processed_at_foreign": invoice.get("InvoiceDate"),
        "updated_at_foreign": newest_iso(
            invoice.get("Modified"), *(r.get("Modified") for r in receivables)),
        "lines": order_lines,
    }
    return record, rejections


def number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def money(value: float) -> float:
    return round(value, 2)
