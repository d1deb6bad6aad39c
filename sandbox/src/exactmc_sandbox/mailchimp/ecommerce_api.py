"""`/3.0/ecommerce/stores[/{id}[/customers|products|orders[/{id}]]]`."""

from __future__ import annotations

import contextlib
import copy
import sys
from typing import Any

from flask import Blueprint, Response, request

from exactmc_sandbox.mailchimp import ecommerce_rules as rules
from exactmc_sandbox.mailchimp.context import ctx
from exactmc_sandbox.mailchimp.emails import subscriber_hash
from exactmc_sandbox.mailchimp.errors import ApiError, invalid, not_found, schema_invalid
from exactmc_sandbox.mailchimp.handler_tools import (
    no_content,
    object_body,
    page,
    respond,
    selected_keys,
)
from exactmc_sandbox.mailchimp.member_ops import MemberWriter
from exactmc_sandbox.mailchimp.state import AccountState, Store

bp = Blueprint("mailchimp_ecommerce", __name__, url_prefix="/3.0/ecommerce")

STORE_FIELDS = ("name", "platform", "domain", "is_syncing", "email_address", "currency_code",
                "money_format", "primary_locale", "timezone", "phone", "address")


def store_to_api(store: Store) -> dict[str, Any]:
    return {"id": store.id, "list_id": store.list_id, "name": store.name,
            "currency_code": store.currency_code, "is_syncing": False, "platform": "",
            "domain": "", **store.extra, "created_at": store.created_at,
            "updated_at": store.updated_at, "_links": []}


def _store(store_id: str) -> Store:
    found = ctx().state.stores.get(store_id)
    if found is None:
        raise not_found()
    return found


def _exists_error(kind: str) -> ApiError:
    return invalid(f"A {kind} with the provided ID already exists in the account.")


# --- stores ----------------------------------------------------------------------------------
@bp.post("/stores")
def create_store() -> Response:
    body = object_body()
    state = ctx().state
    with state.lock:
        rules.missing_fields(body, ("id", "list_id", "name", "currency_code"))
        store_id = rules.check_id(body["id"])
        if store_id in state.stores:
            raise _exists_error("store")
        if body["list_id"] not in state.lists:
            raise invalid(f"The list {body['list_id']} does not exist.")
        now = state.clock.iso()
        store = Store(store_id, body["list_id"], str(body["name"]), str(body["currency_code"]),
                      now, now)
        store.extra = {k: body[k] for k in STORE_FIELDS if k in body and k not in
                       ("name", "currency_code")}
        state.stores[store_id] = store
        return respond(store_to_api(store))


@bp.get("/stores")
def list_stores() -> Response:
    with ctx().state.lock:
        stores = list(ctx().state.stores.values())
        return respond({"stores": [store_to_api(s) for s in page(stores)],
                        "total_items": len(stores), "_links": []})


@bp.get("/stores/<store_id>")
def get_store(store_id: str) -> Response:
    with ctx().state.lock:
        return respond(store_to_api(_store(store_id)))


@bp.patch("/stores/<store_id>")
def update_store(store_id: str) -> Response:
    body = object_body()
    state = ctx().state
    with state.lock:
        store = _store(store_id)
        if "list_id" in body and body["list_id"] != store.list_id:
            raise invalid("A store's list_id cannot be changed once it is set.")
        for key in STORE_FIELDS:
            if key in body:
                if key in ("name", "currency_code"):
                    setattr(store, key, str(body[key]))
                else:
                    store.extra[key] = body[key]
        store.updated_at = state.clock.iso()
        return respond(store_to_api(store))


@bp.delete("/stores/<store_id>")
def delete_store(store_id: str) -> Response:
    with ctx().state.lock:
        _store(store_id)
        del ctx().state.stores[store_id]
    return no_content()


# --- customers -------------------------------------------------------------------------------
def customer_to_api(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    orders_count, total_spent = rules.customer_totals(store, record["id"])
    return {"company": "", "first_name": "", "last_name": "", **record,
            "orders_count": orders_count, "total_spent": total_spent, "_links": []}


def _sync_member(state: AccountState, store: Store, record: dict[str, Any]) -> None:
    """A customer adds a contact when none exists (transactional unless opted in); it never
    changes an existing contact's status. Refusals (forgotten, compliance) leave the list alone.
    """
    lst = state.lists.get(store.list_id)
    email = record.get("email_address")
    if lst is None or not email:
        return
    existing = lst.members.get(subscriber_hash(email))
    if existing is not None and existing.status != "archived":
        return
    names = {"FNAME": record.get("first_name"), "LNAME": record.get("last_name")}
    merge_fields = {tag: value for tag, value in names.items()
                    if value and lst.merge_field_by_tag(tag) is not None}
    status = "subscribed" if record.get("opt_in_status") else "transactional"
    with contextlib.suppress(ApiError):
        MemberWriter(state, lst).upsert(
            email, {"email_address": email, "status_if_new": status,
                    "merge_fields": merge_fields}, skip_merge_validation=True)


def save_customer(state: AccountState, store: Store, customer_id: str, body: dict[str, Any],
                  mode: str) -> dict[str, Any]:
    """mode: create (POST), put (upsert) or patch."""
    rules.check_path_id(body, customer_id)
    existing = store.customers.get(customer_id)
    if mode == "create" and existing is not None:
        raise _exists_error("customer")
    if mode == "patch" and existing is None:
        raise not_found()
    # PUT is a full upsert: its required fields (email_address, opt_in_status) are checked
    # even when the customer exists, as for products and orders; PATCH checks what it sends.
    rules.validate_customer({**body, "id": customer_id}, new=existing is None or mode == "put")
    now = state.clock.iso()
    record = copy.deepcopy(existing) if existing else {"id": customer_id, "created_at": now}
    for key, value in body.items():
        if key not in rules.READ_ONLY_CUSTOMER and key != "id":
            record[key] = value
    record["updated_at"] = now
    store.customers[sys.intern(customer_id)] = record  # shared with the order index
    _sync_member(state, store, record)
    return record


# --- products --------------------------------------------------------------------------------
def save_product(state: AccountState, store: Store, product_id: str, body: dict[str, Any],
                 mode: str) -> dict[str, Any]:
    rules.check_path_id(body, product_id)
    existing = store.products.get(product_id)
    if mode == "create" and existing is not None:
        raise _exists_error("product")
    if mode == "patch" and existing is None:
        raise not_found()
    rules.validate_product({**body, "id": product_id}, new=existing is None or mode == "put")
    now = state.clock.iso()
    if existing is None or mode == "put":
        record: dict[str, Any] = {"id": product_id, "created_at": (existing or {}).get(
            "created_at", now), "description": "", "vendor": "", "images": []}
    else:
        record = copy.deepcopy(existing)
    variants = {str(v["id"]): v for v in record.get("variants", [])}
    for key, value in body.items():
        if key == "variants":
            for variant in value:  # PATCH merges variants by id; PUT starts from none
                merged = {**variants.get(str(variant["id"]), {"created_at": now}), **variant}
                merged["id"] = str(variant["id"])
                merged["updated_at"] = now
                variants[merged["id"]] = merged
        elif key != "id":
            record[key] = value
    record["variants"] = list(variants.values())
    record["updated_at"] = now
    store.products[product_id] = record
    return record


# --- orders ----------------------------------------------------------------------------------
# An order's answer embeds its customer (decoded, with totals): a third of an order write's
# CPU. With `fields` that select none of it (the target asks `id,financial_status`) it is
# left out: respond() would drop it, the other keys keep their order (issue 9).
def order_to_api(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    if selected_keys("customer") == frozenset():  # `fields` select none of the customer
        return {**record, "store_id": store.id, "_links": []}
    customer = store.customers.get(record["customer"]["id"], record["customer"])
    return {**record, "customer": customer_to_api(store, {**customer}), "store_id": store.id,
            "_links": []}


def _describe_lines(store: Store, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    described = []
    for line in lines:
        product = store.products[str(line["product_id"])]
        variant = next(v for v in product["variants"] if v["id"] == str(line["product_variant_id"]))
        described.append({"discount": 0, **line, "id": str(line["id"]),
                          "product_id": product["id"], "product_variant_id": variant["id"],
                          "product_title": product.get("title", ""),
                          "product_variant_title": variant.get("title", "")})
    return described


def save_order(state: AccountState, store: Store, order_id: str, body: dict[str, Any],
               mode: str) -> dict[str, Any]:
    rules.check_path_id(body, order_id)
    existing = store.orders.get(order_id)
    if mode == "create" and existing is not None:
        raise _exists_error("order")
    if mode == "patch" and existing is None:
        raise not_found()
    rules.validate_order(store, {**body, "id": order_id}, new=existing is None or mode == "put")
    if "customer" in body:
        embedded = dict(body["customer"])
        customer_id = str(embedded.pop("id"))
        if customer_id not in store.customers:
            embedded.setdefault("opt_in_status", False)
            save_customer(state, store, customer_id, embedded, "put")
        elif embedded:  # the embedded object updates the customer
            save_customer(state, store, customer_id, embedded, "patch")
    now = state.clock.iso()
    record = copy.deepcopy(existing) if existing and mode == "patch" else {
        "id": order_id, "created_at": (existing or {}).get("created_at", now)}
    for key, value in body.items():
        if key == "customer":
            record["customer"] = {"id": str(value["id"])}
        elif key == "lines":
            if mode == "patch":  # merge by line id
                by_id = {line["id"]: line for line in record.get("lines", [])}
                by_id.update({line["id"]: line for line in _describe_lines(store, value)})
                record["lines"] = list(by_id.values())
            else:
                record["lines"] = _describe_lines(store, value)
        elif key != "id":
            record[key] = value
    if record.get("cancelled_at_foreign") and "financial_status" not in body:
        record["financial_status"] = "cancelled"  # setting cancelled_at_foreign cancels
    record.setdefault("financial_status", "")
    record["updated_at"] = now
    store.orders[order_id] = record
    return record


# --- the shared CRUD routes for customers, products and orders --------------------------------
ENTITIES: dict[str, tuple[Any, Any]] = {
    "customers": (save_customer, customer_to_api),
    "products": (save_product, lambda store, record: {**record, "_links": []}),
    "orders": (save_order, order_to_api),
}


def _entity(kind: str) -> tuple[Any, Any]:
    if kind not in ENTITIES:
        raise not_found()
    return ENTITIES[kind]


def _records(store: Store, kind: str) -> dict[str, dict[str, Any]]:
    return getattr(store, kind)


@bp.get("/stores/<store_id>/<kind>")
def list_entities(store_id: str, kind: str) -> Response:
    _, to_api = _entity(kind)
    with ctx().state.lock:
        store = _store(store_id)
        customer_id = request.args.get("customer_id")
        if kind == "orders" and customer_id:
            records = list(store.orders.of_customer(customer_id))
        else:
            records = list(_records(store, kind).values())
        email = request.args.get("email_address")
        if kind == "customers" and email:
            records = [r for r in records if str(r.get("email_address", "")).lower()
                       == email.lower()]
        return respond({kind: [to_api(store, r) for r in page(records)], "store_id": store_id,
                        "total_items": len(records), "_links": []})


@bp.post("/stores/<store_id>/<kind>")
def create_entity(store_id: str, kind: str) -> Response:
    save, to_api = _entity(kind)
    body = object_body()
    state = ctx().state
    with state.lock:
        store = _store(store_id)
        entity_id = rules.check_id(body.get("id"))
        return respond(to_api(store, save(state, store, entity_id, body, "create")))


@bp.get("/stores/<store_id>/<kind>/<entity_id>")
def get_entity(store_id: str, kind: str, entity_id: str) -> Response:
    _, to_api = _entity(kind)
    with ctx().state.lock:
        store = _store(store_id)
        record = _records(store, kind).get(entity_id)
        if record is None:
            raise not_found()
        return respond(to_api(store, record))


@bp.put("/stores/<store_id>/<kind>/<entity_id>")
@bp.patch("/stores/<store_id>/<kind>/<entity_id>")
def write_entity(store_id: str, kind: str, entity_id: str) -> Response:
    save, to_api = _entity(kind)
    body = object_body()
    if not isinstance(body, dict):
        raise schema_invalid([{"field": "", "message": "Schema describes object"}])
    state = ctx().state
    with state.lock:
        store = _store(store_id)
        rules.check_id(entity_id)
        mode = "put" if request.method == "PUT" else "patch"
        return respond(to_api(store, save(state, store, entity_id, body, mode)))


@bp.delete("/stores/<store_id>/<kind>/<entity_id>")
def delete_entity(store_id: str, kind: str, entity_id: str) -> Response:
    _entity(kind)
    with ctx().state.lock:
        records = _records(_store(store_id), kind)
        if entity_id not in records:
            raise not_found()
        del records[entity_id]
    return no_content()
