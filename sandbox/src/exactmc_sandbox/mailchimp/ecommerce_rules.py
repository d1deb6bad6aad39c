"""E-commerce validation and derived values: what Mailchimp refuses and what it computes."""

from __future__ import annotations

from typing import Any

from exactmc_sandbox.mailchimp.emails import check_email
from exactmc_sandbox.mailchimp.errors import ApiError, invalid, schema_invalid
from exactmc_sandbox.mailchimp.state import Store

FINANCIAL_STATUSES = ("paid", "pending", "refunded", "cancelled")
ID_LIMIT = 50
# Never taken from clients: Mailchimp computes them.
READ_ONLY_CUSTOMER = ("orders_count", "total_spent", "created_at", "updated_at")


def missing_fields(body: dict[str, Any], names: tuple[str, ...], prefix: str = "") -> None:
    errors = [{"field": prefix + n, "message": "This value should not be blank."}
              for n in names if body.get(n) in (None, "", [])]
    if errors:
        raise schema_invalid(errors)


def check_id(value: Any, field_name: str = "id") -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise schema_invalid([{"field": field_name, "message": "This value should not be blank."}])
    if len(str(value)) > ID_LIMIT:
        raise schema_invalid([{"field": field_name, "message":
                               f"This value is too long. It should have {ID_LIMIT} "
                               "characters or less."}])
    return str(value)


def check_number(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise schema_invalid([{"field": field_name, "message": "Schema describes number, "
                               f"{type(value).__name__} found instead"}])
    return value


def check_path_id(body: dict[str, Any], path_id: str) -> None:
    if "id" in body and str(body["id"]) != path_id:
        raise invalid(f"The id in the body ({body['id']}) does not match the id in the URL.")


def validate_customer(body: dict[str, Any], *, new: bool) -> None:
    check_id(body.get("id"))
    if new:
        missing_fields(body, ("email_address",))
        if not isinstance(body.get("opt_in_status"), bool):
            raise schema_invalid([{"field": "opt_in_status",
                                   "message": "Schema describes boolean, NULL found instead"}])
    if "email_address" in body:
        check_email(body["email_address"])


def validate_product(body: dict[str, Any], *, new: bool) -> None:
    check_id(body.get("id"))
    if new:
        missing_fields(body, ("title", "variants"))
    if "variants" in body:
        variants = body["variants"]
        if not isinstance(variants, list) or not variants:
            raise schema_invalid([{"field": "variants",
                                   "message": "A product needs at least one variant."}])
        for index, variant in enumerate(variants):
            if not isinstance(variant, dict):
                raise schema_invalid([{"field": f"variants.item:{index}",
                                       "message": "Schema describes object"}])
            check_id(variant.get("id"), f"variants.item:{index}.id")
            missing_fields(variant, ("title",), f"variants.item:{index}.")


def validate_order(store: Store, body: dict[str, Any], *, new: bool) -> None:
    check_id(body.get("id"))
    if new:
        missing_fields(body, ("customer", "currency_code", "order_total", "lines"))
    if "customer" in body:
        if not isinstance(body["customer"], dict):
            raise schema_invalid([{"field": "customer", "message": "Schema describes object"}])
        check_id(body["customer"].get("id"), "customer.id")
    if "order_total" in body:
        check_number(body["order_total"], "order_total")
    status = body.get("financial_status")
    if status not in (None, "") and status not in FINANCIAL_STATUSES:
        raise schema_invalid([{"field": "financial_status", "message":
                               f"financial_status must be one of {', '.join(FINANCIAL_STATUSES)}"}])
    if "lines" in body:
        validate_lines(store, body["lines"])


def validate_lines(store: Store, lines: Any) -> None:
    if not isinstance(lines, list) or not lines:
        raise schema_invalid([{"field": "lines", "message": "An order needs at least one line."}])
    for index, line in enumerate(lines):
        where = f"lines.item:{index}."
        if not isinstance(line, dict):
            raise schema_invalid([{"field": where[:-1], "message": "Schema describes object"}])
        missing_fields(line, ("id", "product_id", "product_variant_id", "quantity", "price"), where)
        check_number(line["price"], where + "price")
        if not isinstance(line["quantity"], int) or isinstance(line["quantity"], bool):
            raise schema_invalid([{"field": where + "quantity",
                                   "message": "Schema describes integer"}])
        product = store.products.get(str(line["product_id"]))
        variant_ids = {str(v["id"]) for v in (product or {}).get("variants", [])}
        if str(line["product_variant_id"]) not in variant_ids:
            raise ApiError(
                400, "Invalid Resource",
                "A product with the provided variant ID does not exist in the account for "
                "this list.",
                [{"field": where + "product_variant_id",
                  "message": f"product {line['product_id']} / variant "
                             f"{line['product_variant_id']} not found"}],
            )


def customer_totals(store: Store, customer_id: str) -> tuple[int, float]:
    """Orders that count (state.counts_toward_spend) and their spend, kept as orders are
    written (state.OrderTable)."""
    spend = store.orders.spend_of(customer_id)
    return len(spend), round(sum(spend), 2)
