"""A record identical to the last one written for its key is not sent again (issue 7, item 10:
the same job started twice, or a rerun from an older state, writes only what changed)."""

from __future__ import annotations

from typing import Any

from target_mailchimp.testing import base_config, by_email, run_target, state, stream

STAMP = "2030-01-01T00:00:00Z"
MEMBERS = [{"email": f"m{i}@example.com", "source_updated_at": STAMP,
            "merge_fields": {"FNAME": f"M{i}"}} for i in range(3)]
PRODUCTS = [{"id": "P1", "title": "Widget", "price": 5.0}]
ORDERS = [{"id": "O1", "customer_id": "C1", "currency_code": "EUR", "order_total": 10.0,
           "financial_status": "pending",
           "lines": [{"id": "1", "product_id": "P1", "quantity": 2, "price": 5.0}]}]


def everything(members: list[dict[str, Any]] = MEMBERS,
               orders: list[dict[str, Any]] = ORDERS) -> list[dict[str, Any]]:
    return [*stream("members", members),
            *stream("tags", [{"tag_key": "T1", "name": "Gold"}]),
            *stream("member_tags", [{"email": "m0@example.com", "tag_key": "T1",
                                     "tag_name": "Gold"}]),
            *stream("products", PRODUCTS),
            *stream("customers", [{"id": "C1", "email": "m1@example.com"}]),
            *stream("orders", orders),
            state({"bookmark": 1})]


def writes(sandbox: Any, method: str = "") -> int:
    return sum(n for label, n in sandbox.calls()["by_endpoint"].items()
               if not label.startswith("GET ") and label.startswith(method))


def test_the_same_records_again_make_no_write_and_changes_still_go(mailchimp_sandbox, tmp_path):
    config = base_config(mailchimp_sandbox, tmp_path)
    run_target(config, everything())
    assert writes(mailchimp_sandbox) > 0
    mailchimp_sandbox.reset_calls()

    assert run_target(config, everything()) == [{"bookmark": 1}]
    assert writes(mailchimp_sandbox) == 0

    changed = [{**MEMBERS[0], "merge_fields": {"FNAME": "Changed"}}, *MEMBERS[1:]]
    paid = [{**ORDERS[0], "financial_status": "paid"}]
    run_target(config, everything(changed, paid))
    assert by_email(mailchimp_sandbox)["m0@example.com"]["merge_fields"]["FNAME"] == "Changed"
    assert mailchimp_sandbox.store("exact-store")["orders"]["O1"]["financial_status"] == "paid"


def test_a_deleted_product_sent_again_is_written_again(mailchimp_sandbox, tmp_path):
    config = base_config(mailchimp_sandbox, tmp_path)
    run_target(config, stream("products", PRODUCTS))
    run_target(config, stream("deletions", [{"entity": "product", "key": "P1"}]))
    assert "P1" not in mailchimp_sandbox.store("exact-store")["products"]

    run_target(config, stream("products", PRODUCTS))

    assert "P1" in mailchimp_sandbox.store("exact-store")["products"]


def test_only_the_refused_record_of_a_batch_is_sent_again(mailchimp_sandbox, tmp_path):
    config = base_config(mailchimp_sandbox, tmp_path, heal_max_attempts=0,
                         fail_on_unhealed_writes="never")
    products = [*PRODUCTS, {"id": "P2", "title": "Gadget", "price": 7.0}]
    mailchimp_sandbox.add_fault(path=r"/products/P1$", method="PUT", status=400, count=1)
    run_target(config, stream("products", products))
    assert sorted(mailchimp_sandbox.store("exact-store")["products"]) == ["P2"]
    mailchimp_sandbox.reset_calls()

    run_target(config, stream("products", products))

    assert sorted(mailchimp_sandbox.store("exact-store")["products"]) == ["P1", "P2"]
    assert writes(mailchimp_sandbox, "PUT ") == 1


def test_switched_off_every_record_is_sent(mailchimp_sandbox, tmp_path):
    config = base_config(mailchimp_sandbox, tmp_path, skip_unchanged_records=False)
    run_target(config, stream("products", PRODUCTS))
    mailchimp_sandbox.reset_calls()

    run_target(config, stream("products", PRODUCTS))

    assert writes(mailchimp_sandbox, "PUT ") == 1
