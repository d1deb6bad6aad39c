"""Customers, products and orders as idempotent PUT upserts into one e-commerce store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from target_mailchimp.audit import FAILED, OK, SKIPPED, AuditEntry
from target_mailchimp.audit import writes as audit_writes
from target_mailchimp.members import ARCHIVED_REASON
from target_mailchimp.operations import Write, WriteResult
from target_mailchimp.own_writes import member_side_effects
from target_mailchimp.run_context import RunContext
from target_mailchimp.values import clean_body, drop_none, iso, normalise_email

FINANCIAL_STATUSES = {"paid", "pending", "refunded", "cancelled"}
# A drain of this many store objects is an import: written with the store's is_syncing on.
IMPORT_FROM = 100


class InvalidRecord(ValueError):
    """The record cannot become a valid Mailchimp object; goes to the audit trail."""


def customer_body(record: dict[str, Any]) -> dict[str, Any]:
    email = normalise_email(record.get("email"))
    if email is None:
        raise InvalidRecord("missing or invalid email")
    address = record.get("address")
    return drop_none({
        "id": str(record["id"]),
        "email_address": email,
        # False never changes an existing contact's status and adds new ones as transactional.
        "opt_in_status": bool(record.get("opt_in_status", False)),
        "first_name": record.get("first_name"),
        "last_name": record.get("last_name"),
        "company": record.get("company"),
        "address": {k: v for k, v in address.items() if v is not None}
        if isinstance(address, dict) else None,
    })


def product_body(record: dict[str, Any]) -> dict[str, Any]:
    title = record.get("title")
    if not title:
        raise InvalidRecord("missing title")
    variants = record.get("variants") or [{
        "id": str(record["id"]), "title": title, "sku": record.get("sku"),
        "price": record.get("price"),
    }]
    return drop_none({
        "id": str(record["id"]),
        "title": title,
        "description": record.get("description"),
        "vendor": record.get("vendor"),
        "variants": [drop_none({**v, "id": str(v.get("id", record["id"]))}) for v in variants],
    })


def order_line(line: dict[str, Any], index: int) -> dict[str, Any]:
    """One order line. `price` is the UNIT price: Mailchimp counts a line's revenue as
    quantity x price (its own WooCommerce plugin sends line total / quantity; sending line
    totals inflated revenue: mailchimp/mc-woocommerce#7, #11).

    Mailchimp takes whole quantities only, so a fractional one (2.5 hours) goes as quantity 1
    at the line total, which keeps the revenue right instead of truncating it.
    """
    if line.get("product_id") in (None, ""):
        raise InvalidRecord(f"line {index} has no product_id")
    quantity, price = line.get("quantity") or 1, line.get("price")
    if type(quantity) is not int:  # whole numbers (nearly every line) need no float turns
        if float(quantity) != int(float(quantity)) and price is not None:
            quantity, price = 1, round(float(price) * float(quantity), 2)
        quantity = int(float(quantity))
    product_id = str(line["product_id"])
    body = {"id": str(line.get("id") or index), "product_id": product_id,
            "product_variant_id": str(line.get("product_variant_id") or product_id),
            "quantity": quantity}
    if price is not None:
        body["price"] = price
    return body


def order_body(record: dict[str, Any]) -> dict[str, Any]:
    missing = [f for f in ("customer_id", "currency_code", "order_total") if
               record.get(f) in (None, "")]
    if missing:
        raise InvalidRecord(f"missing {', '.join(missing)}")
    status = record.get("financial_status")
    if status is not None and status not in FINANCIAL_STATUSES:
        raise InvalidRecord(f"financial_status {status!r} is not one of "
                            f"{sorted(FINANCIAL_STATUSES)}")
    lines = [order_line(line, index)
             for index, line in enumerate(record.get("lines") or [], start=1)]
    if not lines:
        raise InvalidRecord("an order needs at least one line")
    return drop_none({
        "id": str(record["id"]),
        "customer": {"id": str(record["customer_id"])},
        "currency_code": str(record["currency_code"]).upper(),
        "order_total": record["order_total"],
        "tax_total": record.get("tax_total"),
        "discount_total": record.get("discount_total"),
        "financial_status": status,
        "processed_at_foreign": iso(record.get("processed_at_foreign")),
        "updated_at_foreign": iso(record.get("updated_at_foreign")),
        "cancelled_at_foreign": iso(record.get("cancelled_at_foreign")),
        "lines": lines,
    })


# What is read of an upsert's answer (answer_fields.py): what the audit trail keeps of it
# (an order's answer carries its whole customer and lines; issue 9: memory).
ANSWER_FIELDS = {"customers": "id", "products": "id", "orders": "id,financial_status"}

BODY_BUILDERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "customers": ("customers", customer_body),
    "products": ("products", product_body),
    "orders": ("orders", order_body),
}


def write_store_objects(context: RunContext, stream: str, records: list[dict[str, Any]]) -> None:
    """Upsert the batch (last record per id wins); failures go to the audit trail."""
    collection, build = BODY_BUILDERS[stream]
    latest = {}
    entries: list[AuditEntry] = []
    for record in records:
        if record.get("id") in (None, ""):
            entries.append(AuditEntry(stream, "?", "upsert", FAILED, reason="missing id",
                                      payload=record))
        else:
            latest[str(record["id"])] = record
    writes = []
    # An import (a first sync, a large drain) goes in with is_syncing on so Mailchimp's
    # automations do not fire for history; an incremental's few changes go in as they are,
    # so its automations (order notifications) do fire, and no PATCH on and off (issue 9).
    # A store left syncing by a run that died: that run's import goes on; a store we never
    # wrote into: a first sync (and no upsert sent only to learn the store is missing).
    importing = bool(latest) and (len(latest) >= IMPORT_FROM or context.store_syncing
                                  or context.audit.store_left_syncing(context.store_id)
                                  or not _written_before(context))
    store_id = (context.ensure_store() if importing else context.store_id) if latest else None
    # The run's view: all archived contacts once, then only those changed since.
    archived = context.audience.archived() if latest and stream == "customers" else set()
    # An order would recreate its customer, and so restore the archived contact behind it.
    customers_left_out = {key for key, reason in context.audit.latest_reasons(
        "customers", (str(r.get("customer_id")) for r in latest.values())).items()
        if reason == ARCHIVED_REASON} if stream == "orders" else set()
    for key, record in latest.items():
        try:
            body = clean_body(build(record))
        except (InvalidRecord, KeyError, TypeError, ValueError) as exc:
            entries.append(AuditEntry(stream, key, "upsert", FAILED,
                                      reason=f"invalid record: {exc}", payload=record))
            continue
        if body.get("email_address") in archived or (
                str(record.get("customer_id")) in customers_left_out):
            # Upserting the customer would restore the contact (subscribed, if opted in).
            entries.append(AuditEntry(stream, key, "upsert", SKIPPED, reason=ARCHIVED_REASON))
            continue
        writes.append(Write(stream, key, "upsert", "PUT",
                            f"ecommerce/stores/{store_id}/{collection}/{key}", body,
                            fields=ANSWER_FIELDS[stream]))
    # A customer may create its list member (a change of ours, not an edit in Mailchimp).
    emails = [w.body["email_address"] for w in writes] if stream == "customers" else []
    with member_side_effects(context, emails):
        results = context.executor.execute(writes)
        if not importing:
            results = _again_into_a_new_store(context, results)
        entries += [r.audit_entry() for r in results]
    context.audit.record(entries)


def _written_before(context: RunContext) -> bool:
    """Whether any store object was ever written (this audit trail): the store exists, unless
    deleted in Mailchimp since (then the upserts' 404 says so)."""
    if not context.store_written:
        with context.audit.engine.connect() as conn:
            context.store_written = conn.execute(
                sa.select(audit_writes.c.id).where(audit_writes.c.stream.in_(BODY_BUILDERS),
                                                   audit_writes.c.outcome == OK).limit(1)
            ).first() is not None
    return context.store_written


def _again_into_a_new_store(context: RunContext, results: list[WriteResult]
                            ) -> list[WriteResult]:
    """No PATCH asked first whether the store exists: an upsert's 404 says it is missing.
    Then the store is made (syncing: everything written into it is an import) and those
    writes are sent again."""
    missing = [r.write for r in results if not r.ok and r.status == 404]
    if not missing:
        return results
    context.ensure_store()
    again = iter(context.executor.execute(missing))
    return [next(again) if not r.ok and r.status == 404 else r for r in results]
