"""E-commerce: stores, customers (and the members they create), products and orders."""

from __future__ import annotations

import hashlib

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox, ecommerce_api


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


class Shop:
    def __init__(self, sandbox: MailchimpSandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.auth = ("u", sandbox.api_key)
        self.stores = f"{sandbox.api_base}/ecommerce/stores"
        self.url = f"{self.stores}/exact-nl"
        created = self.session.post(self.stores, timeout=5, json={
            "id": "exact-nl", "list_id": sandbox.list_id, "name": "Exact NL",
            "currency_code": "EUR", "is_syncing": True})
        assert created.status_code == 200, created.text

    def put(self, kind: str, entity_id: str, body: dict) -> requests.Response:
        return self.session.put(f"{self.url}/{kind}/{entity_id}", json=body, timeout=5)

    def product(self, product_id: str = "P1") -> None:
        response = self.put("products", product_id, {
            "id": product_id, "title": f"Product {product_id}",
            "variants": [{"id": product_id, "title": f"Product {product_id}", "price": 10}]})
        assert response.status_code == 200, response.text

    def order(self, order_id: str, **overrides) -> requests.Response:
        body = {"id": order_id, "customer": {"id": "C1"}, "currency_code": "EUR",
                "order_total": 20.0, "financial_status": "paid",
                "lines": [{"id": "1", "product_id": "P1", "product_variant_id": "P1",
                           "quantity": 2, "price": 10.0}], **overrides}
        return self.put("orders", order_id, body)


@pytest.fixture
def shop(mailchimp_sandbox: MailchimpSandbox) -> Shop:
    return Shop(mailchimp_sandbox)


def test_store_list_id_is_fixed(shop: Shop, mailchimp_sandbox: MailchimpSandbox) -> None:
    change = shop.session.patch(shop.url, json={"list_id": "other"}, timeout=5)
    assert change.status_code == 400
    syncing = shop.session.patch(shop.url, json={"is_syncing": False}, timeout=5).json()
    assert syncing["is_syncing"] is False and syncing["list_id"] == mailchimp_sandbox.list_id
    again = shop.session.post(shop.stores, timeout=5, json={
        "id": "exact-nl", "list_id": mailchimp_sandbox.list_id, "name": "x",
        "currency_code": "EUR"})
    assert again.status_code == 400
    listed = shop.session.get(shop.stores, timeout=5).json()
    assert [s["id"] for s in listed["stores"]] == ["exact-nl"]


def test_customer_creates_transactional_member_and_never_changes_existing(
        shop: Shop, mailchimp_sandbox: MailchimpSandbox) -> None:
    created = shop.put("customers", "C1", {"id": "C1", "email_address": "ann@acme.nl",
                                           "opt_in_status": False, "first_name": "Ann"})
    assert created.status_code == 200
    assert created.json()["orders_count"] == 0
    member = mailchimp_sandbox.member("ann@acme.nl")
    assert member["status"] == "transactional"
    assert member["merge_fields"]["FNAME"] == "Ann"

    requests.put(f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/members/"
                 f"{md5('bob@acme.nl')}", auth=("u", mailchimp_sandbox.api_key), timeout=5,
                 json={"email_address": "bob@acme.nl", "status_if_new": "subscribed"})
    mailchimp_sandbox.set_member_status("bob@acme.nl", "unsubscribed")
    shop.put("customers", "C2", {"id": "C2", "email_address": "bob@acme.nl",
                                 "opt_in_status": True})
    assert mailchimp_sandbox.member("bob@acme.nl")["status"] == "unsubscribed"
    shop.put("customers", "C3", {"id": "C3", "email_address": "cat@acme.nl",
                                 "opt_in_status": True})
    assert mailchimp_sandbox.member("cat@acme.nl")["status"] == "subscribed"


@pytest.mark.parametrize(("body", "field"), [
    ({"email_address": "ann@acme.nl"}, "opt_in_status"),
    ({"opt_in_status": False}, "email_address"),
])
def test_customer_required_fields(shop: Shop, body: dict, field: str) -> None:
    response = shop.put("customers", "C9", {"id": "C9", **body})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert shop.session.get(f"{shop.url}/customers/C9", timeout=5).status_code == 404


def test_customer_id_limit_and_fake_email(shop: Shop) -> None:
    long_id = "x" * 51
    assert shop.put("customers", long_id, {"email_address": "a@acme.nl",
                                           "opt_in_status": False}).status_code == 400
    fake = shop.put("customers", "C8", {"email_address": "test@test.com", "opt_in_status": False})
    assert fake.status_code == 400 and "looks fake" in fake.json()["detail"]


def test_product_needs_variants(shop: Shop) -> None:
    assert shop.put("products", "P0", {"title": "No variants"}).status_code == 400
    assert shop.put("products", "P0", {"title": "Empty", "variants": []}).status_code == 400
    shop.product("P1")
    patched = shop.session.patch(f"{shop.url}/products/P1", timeout=5, json={
        "variants": [{"id": "P1-XL", "title": "XL", "price": 12}]}).json()
    assert sorted(v["id"] for v in patched["variants"]) == ["P1", "P1-XL"]


def test_order_with_missing_product_is_refused(shop: Shop, mailchimp_sandbox) -> None:
    refused = shop.order("O1", customer={"id": "C1", "email_address": "dan@acme.nl",
                                         "opt_in_status": False})
    assert refused.status_code == 400
    assert refused.json()["detail"] == ("A product with the provided variant ID does not exist "
                                        "in the account for this list.")
    assert mailchimp_sandbox.store("exact-nl")["orders"] == {}
    assert mailchimp_sandbox.store("exact-nl")["customers"] == {}


def test_order_creates_customer_and_totals_are_computed(shop: Shop,
                                                        mailchimp_sandbox) -> None:
    shop.product("P1")
    first = shop.order("O1", customer={"id": "C1", "email_address": "eve@acme.nl",
                                       "opt_in_status": False, "first_name": "Eve"})
    assert first.status_code == 200, first.text
    assert first.json()["lines"][0]["product_title"] == "Product P1"
    assert mailchimp_sandbox.member("eve@acme.nl")["status"] == "transactional"
    shop.order("O2", order_total=5.5)
    customer = shop.session.get(f"{shop.url}/customers/C1", timeout=5).json()
    assert (customer["orders_count"], customer["total_spent"]) == (2, 25.5)

    # Read-only totals are ignored when sent.
    shop.put("customers", "C1", {"email_address": "eve@acme.nl", "opt_in_status": False,
                                 "orders_count": 99, "total_spent": 1e6})
    customer = shop.session.get(f"{shop.url}/customers/C1", timeout=5).json()
    assert (customer["orders_count"], customer["total_spent"]) == (2, 25.5)

    cancelled = shop.session.patch(f"{shop.url}/orders/O2", timeout=5, json={
        "cancelled_at_foreign": "2026-01-02T10:00:00+00:00"}).json()
    assert cancelled["financial_status"] == "cancelled"
    customer = shop.session.get(f"{shop.url}/customers/C1", timeout=5).json()
    assert (customer["orders_count"], customer["total_spent"]) == (1, 20.0)

    orders = shop.session.get(f"{shop.url}/orders", params={"count": 1}, timeout=5).json()
    assert orders["total_items"] == 2 and len(orders["orders"]) == 1


def test_order_validation(shop: Shop) -> None:
    shop.product("P1")
    shop.put("customers", "C1", {"email_address": "fay@acme.nl", "opt_in_status": False})
    assert shop.order("O3", financial_status="unknown").status_code == 400
    assert shop.order("O3", order_total="20").status_code == 400
    assert shop.order("O3", lines=[]).status_code == 400
    missing_qty = shop.order("O3", lines=[{"id": "1", "product_id": "P1",
                                           "product_variant_id": "P1", "price": 1}])
    assert missing_qty.json()["errors"][0]["field"] == "lines.item:0.quantity"
    new_customer_without_email = shop.order("O3", customer={"id": "C-new"})
    assert new_customer_without_email.status_code == 400
    assert shop.session.get(f"{shop.url}/orders/O3", timeout=5).status_code == 404


def test_delete_and_sandbox_view(shop: Shop, mailchimp_sandbox: MailchimpSandbox) -> None:
    shop.product("P1")
    shop.order("O1", customer={"id": "C1", "email_address": "gus@acme.nl",
                               "opt_in_status": True})
    view = requests.get(f"{mailchimp_sandbox.url}/_sandbox/ecommerce/stores/exact-nl",
                        timeout=5).json()
    assert [o["id"] for o in view["orders"]] == ["O1"]
    assert [c["id"] for c in view["customers"]] == ["C1"]
    assert shop.session.delete(f"{shop.url}/orders/O1", timeout=5).status_code == 204
    assert shop.session.delete(f"{shop.url}/orders/O1", timeout=5).status_code == 404
    assert mailchimp_sandbox.store("exact-nl")["orders"] == {}
    assert "P1" in mailchimp_sandbox.store("exact-nl")["products"]
    by_endpoint = mailchimp_sandbox.calls()["by_endpoint"]
    assert by_endpoint["PUT /ecommerce/stores/*/orders/*"] == 1
    assert by_endpoint["DELETE /ecommerce/stores/*/orders/*"] == 2
    assert by_endpoint["PUT /ecommerce/stores/*/products/*"] == 1


def test_an_order_answer_without_its_customer_reads_no_customer(
        mailchimp_sandbox: MailchimpSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fields` that select no `customer` (the target's `id,financial_status`): the order's
    answer is the same selection, built without decoding the customer (issue 9)."""
    shop = Shop(mailchimp_sandbox)
    assert shop.put("products", "p1", {"id": "p1", "title": "P", "variants": [
        {"id": "p1", "title": "P"}]}).ok
    assert shop.put("customers", "c1", {"id": "c1", "email_address": "c1@acme.nl",
                                        "opt_in_status": False}).ok
    order = {"id": "o1", "customer": {"id": "c1"}, "currency_code": "EUR", "order_total": 5.0,
             "financial_status": "paid", "lines": [{"id": "1", "product_id": "p1",
                                                    "product_variant_id": "p1",
                                                    "quantity": 1, "price": 5.0}]}
    built = []
    real = ecommerce_api.customer_to_api
    monkeypatch.setattr(ecommerce_api, "customer_to_api",
                        lambda store, record: built.append(record["id"]) or real(store, record))
    url = f"{shop.url}/orders/o1"
    full = shop.session.put(url, json=order, timeout=5).json()
    assert built == ["c1"] and full["customer"]["orders_count"] == 1
    for fields in ("id,financial_status", "id,lines.id", "customerx"):
        picked = shop.session.put(url, json=order, params={"fields": fields}, timeout=5)
        keys = {f.split(".")[0] for f in fields.split(",")}
        assert picked.json() == {k: v if k != "lines" else [{"id": "1"}]
                                 for k, v in full.items() if k in keys}
    assert built == ["c1"]
    patched = shop.session.patch(url, json={"financial_status": "refunded"}, timeout=5,
                                 params={"fields": "id,customer.total_spent"}).json()
    assert patched == {"id": "o1", "customer": {"total_spent": 0}} and built == ["c1", "c1"]
