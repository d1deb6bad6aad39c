"""Writes Mailchimp refused are healed by the next scheduled `meltano run`, and the run that
leaves them failed says so in its last log line and exit status."""

from __future__ import annotations

import e2e_expectation as expectation

HICCUP = {"title": "Invalid Resource", "status": 400, "detail": "Temporary validation hiccup"}


def test_refused_products_and_their_orders_are_healed_by_the_next_run(pipeline) -> None:
    pipeline.env.update({
        "TARGET_MAILCHIMP_HEAL_BACKOFF_MINUTES": "0",  # the next run may retry at once
        "TARGET_MAILCHIMP_FAIL_ON_UNHEALED_WRITES": "pending",
        "TARGET_MAILCHIMP_BATCH_OPERATIONS_THRESHOLD": "0",  # direct PUTs, one fault each
    })
    pipeline.mailchimp.add_fault(path=r"/ecommerce/stores/[^/]+/products/", method="PUT",
                                 kind="status", status=400, count=100_000, body=HICCUP)
    first = pipeline.run(check=False)
    assert first.returncode != 0  # the scheduler sees it
    target_lines = [line for line in (first.stdout + first.stderr).splitlines()
                    if "target-mailchimp" in line and "Failed writes left" in line]
    assert target_lines, (first.stdout + first.stderr)[-3000:]
    assert "retriable pending" in target_lines[-1] and "products" in target_lines[-1]
    assert "orders" in target_lines[-1] and "Exit status 3" in target_lines[-1]
    assert pipeline.orders() == {}  # every order named a product Mailchimp refused

    pipeline.mailchimp.clear_faults()
    second = pipeline.run()  # nothing new in Exact: healing alone completes Mailchimp
    assert "Failed writes: none left" in second.stdout + second.stderr
    expected = expectation.expected_state(pipeline.exact)
    orders = pipeline.orders()
    assert {oid: o["financial_status"] for oid, o in orders.items()} == expected.orders
    assert {email: m["status"] for email, m in pipeline.members().items()
            if m["status"] != "archived"} == expected.members
