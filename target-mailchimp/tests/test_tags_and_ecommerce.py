"""Tags (static segments) and e-commerce writes against the sandbox."""

from __future__ import annotations

import pytest
from target_mailchimp import sinks
from target_mailchimp.client import OutageError
from target_mailchimp.ecommerce import write_store_objects
from target_mailchimp.run_context import ConfigurationError, RunContext
from target_mailchimp.testing import audit_rows, by_email, run_target, stream


def _tags(sandbox, email):
    return sorted(by_email(sandbox)[email]["tags"])


def test_tags_added_removed_renamed_and_deactivated(mailchimp_sandbox, config):
    people = [f"t{i}@example.com" for i in range(4)]
    run_target(config, [
        *stream("members", [{"email": e} for e in people]),
        *stream("tags", [{"tag_key": "vip", "name": "VIP", "active": True},
                         {"tag_key": "nl", "name": "Netherlands", "active": True}]),
        *stream("member_tags", [
            *({"email": e, "tag_key": "vip", "tag_name": "VIP", "active": True}
              for e in people),
            {"email": "t0@example.com", "tag_key": "nl", "tag_name": "Netherlands"},
        ]),
    ])
    assert _tags(mailchimp_sandbox, "t0@example.com") == ["Netherlands", "VIP"]
    assert _tags(mailchimp_sandbox, "t3@example.com") == ["VIP"]
    calls = mailchimp_sandbox.calls()["by_endpoint"]
    per_member_tag_calls = [k for k in calls if k.endswith("/tags") and k.startswith("POST")]
    assert per_member_tag_calls == []  # bulk via segments only

    # Remove one member's tag; rename VIP (same key); deactivate Netherlands.
    run_target(config, [
        *stream("tags", [{"tag_key": "vip", "name": "Gold", "active": True},
                         {"tag_key": "nl", "name": "Netherlands", "active": False}]),
        *stream("member_tags", [{"email": "t1@example.com", "tag_key": "vip",
                                 "tag_name": "Gold", "active": False}]),
    ])
    assert _tags(mailchimp_sandbox, "t0@example.com") == ["Gold"]
    assert _tags(mailchimp_sandbox, "t1@example.com") == []
    assert _tags(mailchimp_sandbox, "t2@example.com") == ["Gold"]
    ops = {(r["record_key"], r["operation"], r["outcome"])
           for r in audit_rows(config, stream="tags")}
    assert ("vip", "rename", "ok") in ops
    assert ("nl", "delete", "ok") in ops


def test_a_tag_shared_by_two_tag_keys_is_never_renamed_or_deleted_for_both(
    mailchimp_sandbox, config
):
    # Two source tags with one name are one Mailchimp tag (e.g. a cost center in two divisions).
    run_target(config, [
        *stream("members", [{"email": "nl@example.com"}, {"email": "be@example.com"}]),
        *stream("tags", [{"tag_key": "cc:101:300", "name": "Projects", "active": True},
                         {"tag_key": "cc:102:300", "name": "Projects", "active": True}]),
        *stream("member_tags", [
            {"email": "nl@example.com", "tag_key": "cc:101:300", "tag_name": "Projects"},
            {"email": "be@example.com", "tag_key": "cc:102:300", "tag_name": "Projects"},
        ]),
    ])
    assert _tags(mailchimp_sandbox, "nl@example.com") == ["Projects"]

    # Division 102 retires its cost center, then division 101 renames its own.
    run_target(config, stream("tags", [
        {"tag_key": "cc:102:300", "name": "Projects", "active": False}]))
    assert _tags(mailchimp_sandbox, "nl@example.com") == ["Projects"]
    run_target(config, [
        *stream("tags", [{"tag_key": "cc:101:300", "name": "Projecten", "active": True}]),
        *stream("member_tags", [
            {"email": "nl@example.com", "tag_key": "cc:101:300", "tag_name": "Projecten"}]),
    ])
    assert "Projecten" in _tags(mailchimp_sandbox, "nl@example.com")
    ops = {(r["record_key"], r["operation"], r["outcome"])
           for r in audit_rows(config, stream="tags")}
    assert ("cc:102:300", "delete", "skipped") in ops


def test_member_tags_without_tags_stream_find_segment_by_name(mailchimp_sandbox, config):
    run_target(config, [
        *stream("members", [{"email": "a@example.com"}, {"email": "b@example.com"}]),
        *stream("member_tags", [{"email": "a@example.com", "tag_key": "k1",
                                 "tag_name": "Customer"}]),
    ])
    # A fresh audit DB (e.g. another machine) must reuse the existing segment by name.
    config["audit_store_url"] = config["audit_store_url"].replace("audit.sqlite", "other.sqlite")
    run_target(config, stream("member_tags", [{"email": "b@example.com", "tag_key": "k1",
                                               "tag_name": "Customer"}]))
    assert _tags(mailchimp_sandbox, "b@example.com") == ["Customer"]
    assert _tags(mailchimp_sandbox, "a@example.com") == ["Customer"]


def test_tagging_an_unknown_member_is_audited(mailchimp_sandbox, config):
    run_target(config, [
        *stream("members", [{"email": "known@example.com"}]),
        *stream("member_tags", [
            {"email": "known@example.com", "tag_key": "x", "tag_name": "X"},
            {"email": "stranger@example.com", "tag_key": "x", "tag_name": "X"}]),
    ])
    assert _tags(mailchimp_sandbox, "known@example.com") == ["X"]
    rows = {r["record_key"]: r for r in audit_rows(config, stream="member_tags")}
    assert rows["stranger@example.com/x"]["outcome"] == "failed"
    assert rows["stranger@example.com/x"]["reason"]
    assert "stranger@example.com" not in by_email(mailchimp_sandbox)


PRODUCTS = [{"id": "P1", "title": "Widget", "price": 10.0, "sku": "W-1"},
            {"id": "P2", "title": "Gadget", "price": 5.5}]
CUSTOMERS = [{"id": "C1", "email": "buyer@example.com", "opt_in_status": False,
              "first_name": "Bea"}]


def _order(order_id, product="P1", **extra):
    return {"id": order_id, "customer_id": "C1", "currency_code": "eur", "order_total": 20.0,
            "financial_status": "paid", "processed_at_foreign": "2024-03-01T10:00:00Z",
            "lines": [{"id": "1", "product_id": product, "quantity": 2, "price": 10.0}],
            **extra}


def test_orders_arriving_first_still_go_in_after_products_and_customers(mailchimp_sandbox,
                                                                        config):
    # Orders' SCHEMA comes first, so singer-sdk would drain them first without our ordering.
    run_target(config, [
        *stream("orders", [_order("O1"), _order("O2", product="P2")]),
        *stream("products", PRODUCTS),
        *stream("customers", CUSTOMERS),
    ])
    store = mailchimp_sandbox.store("exact-store")
    assert set(store["orders"]) == {"O1", "O2"}
    assert set(store["products"]) == {"P1", "P2"}
    assert store["store"]["is_syncing"] is False
    assert store["orders"]["O1"]["financial_status"] == "paid"
    # A transactional customer never becomes subscribed.
    assert by_email(mailchimp_sandbox)["buyer@example.com"]["status"] == "transactional"
    assert all(r["outcome"] == "ok" for r in audit_rows(config, stream="orders"))


def test_order_with_missing_product_is_audited_and_others_go_in(mailchimp_sandbox, config):
    run_target(config, [
        *stream("products", PRODUCTS[:1]),
        *stream("customers", CUSTOMERS),
        *stream("orders", [_order("O1"), _order("BAD", product="NOPE"),
                           {"id": "HALF", "customer_id": "C1"}]),
    ])
    store = mailchimp_sandbox.store("exact-store")
    assert set(store["orders"]) == {"O1"}
    failed = {r["record_key"]: r for r in audit_rows(config, stream="orders", outcome="failed")}
    assert "variant" in failed["BAD"]["reason"].lower() or "product" in failed["BAD"]["reason"]
    assert failed["BAD"]["payload"]  # kept for replay
    assert "missing" in failed["HALF"]["reason"]


def test_large_volumes_go_through_batches(mailchimp_sandbox, config):
    config["batch_operations_threshold"] = 5
    products = [{"id": f"P{i}", "title": f"Thing {i}", "price": 1.0 + i} for i in range(12)]
    run_target(config, stream("products", products))
    store = mailchimp_sandbox.store("exact-store")
    assert len(store["products"]) == 12
    calls = mailchimp_sandbox.calls()["by_endpoint"]
    assert any(k.startswith("POST") and "batches" in k for k in calls)
    assert not any(k.startswith("PUT") and "products" in k for k in calls)
    assert len(audit_rows(config, stream="products", outcome="ok")) == 12


def test_deletions_archive_members_and_cancel_orders(mailchimp_sandbox, config):
    run_target(config, [
        *stream("members", [{"email": "leaver@example.com"}, {"email": "stayer@example.com"}]),
        *stream("products", PRODUCTS), *stream("customers", CUSTOMERS),
        *stream("orders", [_order("O1"), _order("O2")]),
    ])
    run_target(config, stream("deletions", [
        {"entity": "member", "key": "Leaver@example.com", "deleted_at": "2024-05-01T00:00:00Z"},
        {"entity": "order", "key": "O1", "deleted_at": "2024-05-01T00:00:00Z"},
        {"entity": "order", "key": "O2", "action": "delete"},
        {"entity": "member", "key": "nobody@example.com"},
        {"entity": "planet", "key": "mars"},
    ]))
    members = by_email(mailchimp_sandbox)
    assert members["leaver@example.com"]["status"] == "archived"
    assert members["stayer@example.com"]["status"] == "subscribed"
    orders = mailchimp_sandbox.store("exact-store")["orders"]
    assert orders["O1"]["financial_status"] == "cancelled"
    assert "O2" not in orders
    failed = audit_rows(config, stream="deletions", outcome="failed")
    assert [r["record_key"] for r in failed] == ["planet/mars"]
    # A later source update does not bring the archived member back.
    run_target(config, stream("members", [{"email": "leaver@example.com"}]))
    assert by_email(mailchimp_sandbox)["leaver@example.com"]["status"] == "archived"


def test_store_is_syncing_while_loading_and_reset_even_when_the_run_fails(
    mailchimp_sandbox, config, monkeypatch
):
    seen = []

    def write_and_look(context, stream_name, rows):
        write_store_objects(context, stream_name, rows)
        seen.append(mailchimp_sandbox.store("exact-store")["store"]["is_syncing"])

    monkeypatch.setattr(sinks, "write_store_objects", write_and_look)
    config["retry_max_tries"] = 2
    # Orders fail hard (outage) after the store was set up: the run stops mid-backfill.
    mailchimp_sandbox.add_fault(path="/orders/", kind="status", status=503, count=10)
    with pytest.raises(OutageError):
        run_target(config, [*stream("products", PRODUCTS), *stream("customers", CUSTOMERS),
                            *stream("orders", [_order("O1")])])
    assert seen == [True, True]  # products and customers went in while syncing
    # The failed run still turned automations back on.
    assert mailchimp_sandbox.store("exact-store")["store"]["is_syncing"] is False
    mailchimp_sandbox.clear_faults()
    run_target(config, stream("orders", [_order("O1")]))
    store = mailchimp_sandbox.store("exact-store")
    assert store["store"]["is_syncing"] is False and "O1" in store["orders"]


def test_store_left_syncing_by_a_dead_run_is_reset_by_the_next_run(mailchimp_sandbox, config,
                                                                    monkeypatch):
    config["retry_max_tries"] = 2
    # The run dies mid-backfill and cannot reset the flag either (as after kill -9).
    mailchimp_sandbox.add_fault(path="/orders/", kind="status", status=503, count=10)
    with monkeypatch.context() as killed:
        killed.setattr(RunContext, "finish", lambda self: None)
        with pytest.raises(OutageError):
            run_target(config, [*stream("products", PRODUCTS),
                                *stream("orders", [_order("O1")])])
    assert mailchimp_sandbox.store("exact-store")["store"]["is_syncing"] is True
    mailchimp_sandbox.clear_faults()
    # The next run has no e-commerce records at all, yet automations come back on.
    run_target(config, stream("members", [{"email": "later@example.com"}]))
    assert mailchimp_sandbox.store("exact-store")["store"]["is_syncing"] is False
    run_target(config, stream("members", [{"email": "later2@example.com"}]))
    patches = [c for c in mailchimp_sandbox.calls()["calls"] if c["method"] == "PATCH"]
    assert [c["status"] for c in patches][-1] == 200  # the flag is reset once, not every run
    assert len([c for c in patches if c["status"] == 200]) == 1


def test_unknown_list_name_is_a_clear_error(mailchimp_sandbox, config):
    config.pop("list_id")
    config["list_name"] = "No Such Audience"
    with pytest.raises(ConfigurationError, match="No Such Audience"):
        run_target(config, stream("members", [{"email": "a@example.com"}]))


def test_a_customer_never_restores_an_archived_contact(mailchimp_sandbox, config):
    run_target(config, stream("members", [{"email": "gone@example.com"}]))
    run_target(config, stream("deletions", [{"entity": "member", "key": "gone@example.com"}]))
    run_target(config, stream("customers", [{"id": "C7", "email": "gone@example.com",
                                             "opt_in_status": True}]))
    assert by_email(mailchimp_sandbox)["gone@example.com"]["status"] == "archived"
    [row] = audit_rows(config, stream="customers")
    assert row["outcome"] == "skipped" and "archived" in row["reason"]


def test_a_tag_for_an_archived_member_is_left_out_not_retried(mailchimp_sandbox, config):
    run_target(config, stream("members", [{"email": "gone@example.com"},
                                          {"email": "here@example.com"}]))
    run_target(config, stream("deletions", [{"entity": "member", "key": "gone@example.com"}]))
    run_target(config, [*stream("tags", [{"tag_key": "T1", "name": "Gold"}]),
                        *stream("member_tags", [
                            {"email": e, "tag_key": "T1", "tag_name": "Gold"}
                            for e in ("gone@example.com", "here@example.com")])])

    rows = {r["record_key"]: r for r in audit_rows(config, stream="member_tags")}
    assert rows["gone@example.com/T1"]["outcome"] == "skipped"
    assert "archived" in rows["gone@example.com/T1"]["reason"]
    assert rows["here@example.com/T1"]["outcome"] == "ok"
    assert by_email(mailchimp_sandbox)["gone@example.com"]["status"] == "archived"


def test_an_order_of_a_customer_left_out_as_archived_is_left_out_too(mailchimp_sandbox, config):
    run_target(config, stream("members", [{"email": "gone@example.com"}]))
    run_target(config, stream("deletions", [{"entity": "member", "key": "gone@example.com"}]))
    run_target(config, [*stream("products", PRODUCTS),
                        *stream("customers", [{"id": "C7", "email": "gone@example.com"}]),
                        *stream("orders", [_order("O7", customer_id="C7")])])

    assert by_email(mailchimp_sandbox)["gone@example.com"]["status"] == "archived"
    assert "O7" not in mailchimp_sandbox.store("exact-store")["orders"]
    [row] = audit_rows(config, stream="orders")
    assert row["outcome"] == "skipped" and "archived" in row["reason"]


def test_order_lines_carry_unit_prices_and_fractional_quantities_keep_revenue(
    mailchimp_sandbox, config
):
    order = _order("O5", order_total=55.0, lines=[
        {"id": "1", "product_id": "P1", "quantity": 3, "price": 10.0},
        {"id": "2", "product_id": "P2", "quantity": 2.5, "price": 10.0}])
    run_target(config, [*stream("products", PRODUCTS), *stream("customers", CUSTOMERS),
                        *stream("orders", [order])])
    lines = {line["id"]: line for line in
             mailchimp_sandbox.store("exact-store")["orders"]["O5"]["lines"]}
    assert (lines["1"]["quantity"], lines["1"]["price"]) == (3, 10.0)  # unit price as given
    assert (lines["2"]["quantity"], lines["2"]["price"]) == (1, 25.0)  # not truncated to 2


def test_order_discount_total_reaches_mailchimp(mailchimp_sandbox, config):
    # 2 × 10.00 less a 4.00 discount line: Mailchimp is told the discount, so the lines and
    # the order total agree (the mapper folds Exact's discount/return lines into it).
    order = _order("O6", order_total=16.0, discount_total=4.0)
    run_target(config, [*stream("products", PRODUCTS), *stream("customers", CUSTOMERS),
                        *stream("orders", [order])])
    assert mailchimp_sandbox.store("exact-store")["orders"]["O6"]["discount_total"] == 4.0


def test_deletion_actions_ignore_and_unknown_are_audited(mailchimp_sandbox, config):
    run_target(config, stream("members", [{"email": "kept@example.com"}]))
    run_target(config, stream("deletions", [
        {"entity": "member", "key": "kept@example.com", "action": "ignore"},
        {"entity": "order", "key": "O9", "action": "explode"}]))
    assert by_email(mailchimp_sandbox)["kept@example.com"]["status"] == "subscribed"
    rows = {r["record_key"]: r for r in audit_rows(config, stream="deletions")}
    assert rows["member/kept@example.com"]["outcome"] == "skipped"
    assert rows["order/O9"]["outcome"] == "failed"
    assert rows["order/O9"]["reason"] == "unknown order action 'explode'"


def test_the_newest_member_tag_wins_whatever_the_order_and_names_are_cleaned(
        mailchimp_sandbox, config):
    # Issue 9 reads the dates only for a pair seen twice and cleans each tag name once.
    run_target(config, [
        *stream("members", [{"email": "a@example.com"}, {"email": "b@example.com"}]),
        *stream("member_tags", [
            {"email": "a@example.com", "tag_key": "k1", "tag_name": "VIP\tclient",
             "active": True, "source_updated_at": "2025-03-02T00:00:00Z"},
            {"email": "A@example.com", "tag_key": "k1", "tag_name": "VIP\tclient",
             "active": False, "source_updated_at": "2025-03-01T00:00:00Z"},
            {"email": "b@example.com", "tag_key": "k1", "tag_name": "VIP\tclient",
             "active": True, "source_updated_at": "2025-03-01T00:00:00Z"},
            {"email": "b@example.com", "tag_key": "k1", "tag_name": "VIP\tclient",
             "active": False, "source_updated_at": "2025-03-02T00:00:00Z"}]),
    ])
    assert _tags(mailchimp_sandbox, "a@example.com") == ["VIP client"]
    assert _tags(mailchimp_sandbox, "b@example.com") == []
