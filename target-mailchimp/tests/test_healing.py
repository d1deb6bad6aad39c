"""Failed writes heal themselves in later runs: backoff, attempts, permanent refusals, report."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import re
import subprocess
import sys
from typing import Any

import pytest
from target_mailchimp import admin
from target_mailchimp.audit import FAILED, AuditEntry, AuditStore
from target_mailchimp.client import subscriber_hash
from target_mailchimp.target import TargetMailchimp
from target_mailchimp.testing import audit_rows, base_config, by_email, stream, to_lines

HICCUP = {"title": "Invalid Resource", "status": 400, "detail": "Temporary validation hiccup"}
PRODUCT = {"id": "P1", "title": "Widget", "price": 95.0}
CUSTOMER = {"id": "C1", "email": "buyer@example.com"}
ORDER = {"id": "O1", "customer_id": "C1", "currency_code": "EUR", "order_total": 95.0,
         "lines": [{"id": "1", "product_id": "P1", "quantity": 1, "price": 95.0}]}


class Clock:
    """The target's clock and the sandbox's, moved together (no sleeping between 'runs')."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.now = datetime.datetime.now(datetime.timezone.utc)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += datetime.timedelta(minutes=minutes)
        self.sandbox.advance_clock(minutes * 60)


def run(config: dict[str, Any], messages: list[dict[str, Any]], clock: Clock) -> int:
    """One scheduled run in-process; returns its exit status."""
    target = TargetMailchimp(config=config)
    target.run_context.clock = clock
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            target.listen(io.StringIO(to_lines(messages)))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def calls_to(sandbox: Any, method: str, pattern: str) -> int:
    return sum(1 for c in sandbox.calls()["calls"]
               if c["method"] == method and re.search(pattern, c["path"]))


def last_line(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.records[-1].getMessage()


@pytest.fixture
def clock(mailchimp_sandbox: Any) -> Clock:
    return Clock(mailchimp_sandbox)


def test_next_runs_heal_a_product_and_then_the_order_that_needed_it(mailchimp_sandbox, config,
                                                                     clock, caplog):
    caplog.set_level(logging.INFO)
    mailchimp_sandbox.add_fault(path="/products/P1$", method="PUT", kind="status", status=400,
                                count=1, body=HICCUP)
    messages = [*stream("customers", [CUSTOMER]), *stream("products", [PRODUCT]),
                *stream("orders", [ORDER])]
    assert run(config, messages, clock) == 0
    store = mailchimp_sandbox.store("exact-store")
    assert "P1" not in store["products"] and "O1" not in store["orders"]
    # The order was refused for want of its product: a refusal the product's healing fixes.
    assert {r["record_key"] for r in audit_rows(config, outcome=FAILED)} == {"P1", "O1"}
    assert "2 retriable" in last_line(caplog)

    clock.advance(11)
    assert run(config, [], clock) == 0  # a run with no new data still heals
    store = mailchimp_sandbox.store("exact-store")
    assert store["products"]["P1"]["title"] == "Widget"
    assert store["orders"]["O1"]["lines"][0]["product_id"] == "P1"
    assert {r["replay_outcome"] for r in audit_rows(config, outcome=FAILED)} == {"ok"}
    assert "2 healed" in last_line(caplog) and "retriable" not in last_line(caplog)


def test_the_reported_case_members_orders_and_products_all_heal(mailchimp_sandbox, config,
                                                                clock, caplog):
    """Issue 7: a batch of members, 3 products and the orders naming them refused once."""
    caplog.set_level(logging.INFO)
    emails = [f"m{i}@example.com" for i in range(30)]
    products = [{"id": f"P{i}", "title": f"Item {i}", "price": 10.0 + i} for i in range(3)]
    customers = [{"id": f"C{i}", "email": emails[i]} for i in range(20)]
    orders = [{"id": f"O{i}", "customer_id": f"C{i}", "currency_code": "EUR",
               "order_total": 10.0 + i % 3,
               "lines": [{"id": "1", "product_id": f"P{i % 3}", "quantity": 1,
                          "price": 10.0 + i % 3}]} for i in range(20)]
    mailchimp_sandbox.add_fault(path=r"^/3\.0/lists/[^/]+$", method="POST", kind="status",
                                status=400, count=1, body=HICCUP)
    mailchimp_sandbox.add_fault(path=r"/products/P[0-2]$", method="PUT", kind="status",
                                status=400, count=3, body=HICCUP)
    run(config, [*stream("members", [{"email": e, "merge_fields": {"FNAME": "M"}}
                                     for e in emails]),
                 *stream("products", products), *stream("customers", customers),
                 *stream("orders", orders)], clock)
    failed = audit_rows(config, outcome=FAILED)
    assert {r["stream"] for r in failed} == {"members", "products", "orders"}
    assert len(failed) == 30 + 3 + 20
    assert "53 retriable" in last_line(caplog)

    clock.advance(11)
    assert run(config, [], clock) == 0
    members = by_email(mailchimp_sandbox)
    assert set(emails) <= set(members)
    assert all(members[e]["merge_fields"]["FNAME"] == "M" for e in emails)
    # default_status_if_new (subscribed in these tests) for new ones; customers made C0..C19
    # transactional first, and a re-sent PUT never changes an existing member's status.
    assert {members[e]["status"] for e in emails[20:]} == {"subscribed"}
    assert {members[e]["status"] for e in emails[:20]} == {"transactional"}
    store = mailchimp_sandbox.store("exact-store")
    assert set(store["products"]) == {"P0", "P1", "P2"}
    assert set(store["orders"]) == {o["id"] for o in orders}
    assert {r["replay_outcome"] for r in audit_rows(config, outcome=FAILED)} == {"ok"}
    assert "53 healed" in last_line(caplog) and "none left" in last_line(caplog)


def test_an_outage_while_healing_stops_the_pass_and_the_run_still_ends_well(
        mailchimp_sandbox, tmp_path, clock, caplog):
    caplog.set_level(logging.INFO)
    config = base_config(mailchimp_sandbox, tmp_path, retry_max_tries=2)
    mailchimp_sandbox.add_fault(path="/products/P1$", method="PUT", kind="status", status=400,
                                count=1, body=HICCUP)
    run(config, [*stream("customers", [CUSTOMER]), *stream("products", [PRODUCT]),
                 *stream("orders", [ORDER])], clock)
    clock.advance(11)
    mailchimp_sandbox.add_fault(path="/products/P1$", method="PUT", kind="status", status=503,
                                count=100)
    mailchimp_sandbox.reset_calls()
    assert run(config, [], clock) == 0
    assert calls_to(mailchimp_sandbox, "PUT", "/orders/O1$") == 0  # waits for its product
    assert "stopped early" in last_line(caplog) and "2 retriable" in last_line(caplog)
    assert mailchimp_sandbox.store("exact-store")["store"]["is_syncing"] is False
    [product] = audit_rows(config, record_key="P1")
    assert product["replay_outcome"] == "failed"  # one attempt spent, still open

    mailchimp_sandbox.clear_faults()
    clock.advance(21)
    assert run(config, [], clock) == 0
    assert set(mailchimp_sandbox.store("exact-store")["orders"]) == {"O1"}


def test_an_outage_spends_no_attempt_beyond_the_writes_in_flight(mailchimp_sandbox, tmp_path,
                                                                  clock):
    config = base_config(mailchimp_sandbox, tmp_path, retry_max_tries=2, max_in_flight=4,
                         batch_operations_threshold=200)  # each write direct
    customers = [{"id": f"C{i}", "email": f"c{i}@example.com"} for i in range(25)]
    mailchimp_sandbox.add_fault(path="/customers/C", method="PUT", kind="status", status=400,
                                count=25, body=HICCUP)
    run(config, stream("customers", customers), clock)
    clock.advance(11)
    mailchimp_sandbox.add_fault(path="/customers/C", method="PUT", kind="status", status=503,
                                count=1000)
    run(config, [], clock)
    tried = [r for r in audit_rows(config, outcome=FAILED) if r["replay_outcome"] == "failed"]
    assert 1 <= len(tried) <= 4  # the rest was never sent: no attempt spent on them


def test_an_order_waits_while_its_product_is_still_refused(mailchimp_sandbox, config, clock):
    mailchimp_sandbox.add_fault(path="/products/P1$", method="PUT", kind="status", status=400,
                                count=2, body=HICCUP)  # the write and its first retry
    run(config, [*stream("customers", [CUSTOMER]), *stream("products", [PRODUCT]),
                 *stream("orders", [ORDER])], clock)
    mailchimp_sandbox.reset_calls()
    clock.advance(11)
    run(config, [], clock)
    assert calls_to(mailchimp_sandbox, "PUT", "/products/P1$") == 1
    assert calls_to(mailchimp_sandbox, "PUT", "/orders/O1$") == 0  # no attempt spent on it
    [order] = audit_rows(config, record_key="O1")
    assert order["replay_outcome"] is None

    clock.advance(21)
    run(config, [], clock)
    store = mailchimp_sandbox.store("exact-store")
    assert "P1" in store["products"] and "O1" in store["orders"]
    assert calls_to(mailchimp_sandbox, "PUT", "/orders/O1$") == 1


def test_backoff_doubles_between_attempts(mailchimp_sandbox, config, clock):
    mailchimp_sandbox.add_fault(path="/customers/C1$", method="PUT", kind="status", status=400,
                                count=2, body=HICCUP)  # the write and its first retry
    run(config, stream("customers", [CUSTOMER]), clock)
    customer_puts = r"/customers/C1$"

    clock.advance(9)  # before failed_at + 10 minutes: not yet
    run(config, [], clock)
    assert calls_to(mailchimp_sandbox, "PUT", customer_puts) == 1

    clock.advance(2)  # 11 minutes after the failure: attempt 1, refused again
    run(config, [], clock)
    assert calls_to(mailchimp_sandbox, "PUT", customer_puts) == 2
    assert "C1" not in mailchimp_sandbox.store("exact-store")["customers"]

    clock.advance(15)  # next attempt not before attempt 1 + 20 minutes
    run(config, [], clock)
    assert calls_to(mailchimp_sandbox, "PUT", customer_puts) == 2

    clock.advance(6)
    run(config, [], clock)
    assert calls_to(mailchimp_sandbox, "PUT", customer_puts) == 3
    assert "C1" in mailchimp_sandbox.store("exact-store")["customers"]
    [row] = audit_rows(config, outcome=FAILED)
    assert row["replay_outcome"] == "ok"


def test_permanent_refusals_are_not_retried_but_stay_visible(mailchimp_sandbox, config, clock,
                                                             caplog):
    caplog.set_level(logging.INFO)
    gone = "gone@example.com"
    run(config, stream("members", [{"email": gone}]), clock)
    run(config, stream("deletions", [{"entity": "member", "key": gone,
                                      "action": "delete_permanent"}]), clock)
    # Mailchimp refuses a fake-looking address and an address erased for good (GDPR).
    clock.advance(1)
    assert run(config, stream("members", [{"email": "fake@example.org"}, {"email": gone},
                                          {"email": "fine@example.com"}]), clock) == 0
    failed = {r["record_key"] for r in audit_rows(config, outcome=FAILED)}
    assert failed == {"fake@example.org", gone}
    assert "2 permanent" in last_line(caplog)
    assert "@" not in last_line(caplog)  # counts and reasons, never the addresses

    mailchimp_sandbox.reset_calls()
    for _ in range(3):
        clock.advance(24 * 60)
        assert run(config, [], clock) == 0
    hashes = "|".join(subscriber_hash(e) for e in ("fake@example.org", gone))
    assert calls_to(mailchimp_sandbox, "PUT", hashes) == 0
    assert calls_to(mailchimp_sandbox, "GET", hashes) == 0
    assert "2 permanent" in last_line(caplog)
    assert {r["replay_outcome"] for r in audit_rows(config, outcome=FAILED)} == {None}


def test_exhausted_attempts_fail_one_run_then_replay_by_hand(mailchimp_sandbox, tmp_path,
                                                              clock, caplog, capsys):
    caplog.set_level(logging.INFO)
    config = base_config(mailchimp_sandbox, tmp_path, heal_max_attempts=2,
                         heal_backoff_minutes=10)
    mailchimp_sandbox.add_fault(path="/customers/C1$", method="PUT", kind="status", status=400,
                                count=3, body=HICCUP)
    assert run(config, stream("customers", [CUSTOMER]), clock) == 0
    clock.advance(11)
    assert run(config, [], clock) == 0  # attempt 1 of 2 failed: still hope
    clock.advance(21)
    assert run(config, [], clock) == 3  # attempt 2 of 2 failed: a person must look
    assert "1 given up" in last_line(caplog) and "Exit status 3" in last_line(caplog)
    assert "customers" in last_line(caplog) and "hiccup" in last_line(caplog)

    mailchimp_sandbox.reset_calls()
    clock.advance(24 * 60)
    assert run(config, [], clock) == 0  # one alert per give-up, not a red schedule forever
    assert calls_to(mailchimp_sandbox, "PUT", r"/customers/C1$") == 0
    assert "1 given up" in last_line(caplog)

    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    assert admin.main(["replay", "--config", str(config_path)]) == 0
    assert "1 succeeded" in capsys.readouterr().out
    assert "C1" in mailchimp_sandbox.store("exact-store")["customers"]


def test_newer_data_wins_over_an_older_failed_write(mailchimp_sandbox, config, clock):
    mailchimp_sandbox.add_fault(path="/customers/C1$", method="PUT", kind="status", status=400,
                                count=1, body=HICCUP)
    mailchimp_sandbox.add_fault(path="/orders/O1$", method="PUT", kind="status", status=400,
                                count=1, body=HICCUP)
    run(config, [*stream("customers", [{**CUSTOMER, "first_name": "Old"}]),
                 *stream("products", [PRODUCT]), *stream("orders", [ORDER])], clock)
    assert len(audit_rows(config, outcome=FAILED)) == 2

    clock.advance(11)  # both are due; this run brings newer data for C1 and deletes O1
    mailchimp_sandbox.reset_calls()
    run(config, [*stream("customers", [{**CUSTOMER, "first_name": "New"}]),
                 *stream("deletions", [{"entity": "order", "key": "O1"}])], clock)
    store = mailchimp_sandbox.store("exact-store")
    assert store["customers"]["C1"]["first_name"] == "New"
    assert "O1" not in store["orders"]  # the stale order PUT would have recreated it
    assert calls_to(mailchimp_sandbox, "PUT", r"/customers/C1$") == 1
    assert calls_to(mailchimp_sandbox, "PUT", r"/orders/O1$") == 0
    assert {r["replay_outcome"] for r in audit_rows(config, outcome=FAILED)} == {"skipped"}


def test_healing_never_subscribes_anyone(mailchimp_sandbox, config, clock):
    email = "left@example.com"
    run(config, stream("members", [{"email": email}]), clock)
    mailchimp_sandbox.set_member_status(email, "unsubscribed")  # before the failed write
    clock.advance(1)
    mailchimp_sandbox.add_fault(path=f"/members/{subscriber_hash(email)}$", method="PUT",
                                kind="status", status=400, count=1, body=HICCUP)
    run(config, stream("members", [{"email": email, "merge_fields": {"FNAME": "Lee"}}]), clock)
    assert by_email(mailchimp_sandbox)[email]["merge_fields"].get("FNAME") != "Lee"
    # A row written by an older version that carried a subscribing status.
    store = AuditStore(config["audit_store_url"], "older-version")
    store.record([AuditEntry(
        "members", "old@example.com", "upsert", FAILED, reason="400 Invalid Resource: x",
        method="PUT", path=f"lists/{mailchimp_sandbox.list_id}/members/"
                           f"{subscriber_hash('old@example.com')}",
        payload={"email_address": "old@example.com", "status": "subscribed"})])
    store.close()

    clock.advance(11)
    run(config, [], clock)
    members = by_email(mailchimp_sandbox)
    assert members[email]["merge_fields"]["FNAME"] == "Lee"  # healed...
    assert members[email]["status"] == "unsubscribed"        # ...without re-subscribing
    assert members["old@example.com"]["status"] == "subscribed"  # status_if_new: a new member
    assert {r["replay_outcome"] for r in audit_rows(config, outcome=FAILED)} == {"ok"}


def test_last_log_line_and_exit_status_through_the_cli(mailchimp_sandbox, tmp_path):
    config = base_config(mailchimp_sandbox, tmp_path, fail_on_unhealed_writes="pending")
    (tmp_path / "config.json").write_text(json.dumps(config))
    mailchimp_sandbox.add_fault(path="/customers/C1$", method="PUT", kind="status", status=400,
                                count=1, body=HICCUP)
    (tmp_path / "input.jsonl").write_text(to_lines(
        [*stream("members", [{"email": "fake@example.org"}]),
         *stream("customers", [CUSTOMER, {"id": "C2", "email": "two@example.com"}]),
         {"type": "STATE", "value": {"bookmark": 1}}]))
    command = [sys.executable, "-m", "target_mailchimp.target", "--config",
               str(tmp_path / "config.json"), "--input", str(tmp_path / "input.jsonl")]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert json.loads(done.stdout.splitlines()[-1]) == {"bookmark": 1}  # state still moves on
    last = done.stderr.strip().splitlines()[-1]
    assert "1 retriable" in last and "customers 1" in last and "1 permanent" in last
    assert "Exit status 3" in last
    assert "@" not in last and config["api_key"] not in done.stderr

    config["fail_on_unhealed_writes"] = "never"
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "input.jsonl").write_text("")
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "1 retriable" in done.stderr.strip().splitlines()[-1]


def test_replay_by_hand_reports_permanent_refusals_without_resending(mailchimp_sandbox, config,
                                                                    tmp_path, capsys):
    run(config, stream("members", [{"email": "fake@example.org"}]), Clock(mailchimp_sandbox))
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    mailchimp_sandbox.reset_calls()
    assert admin.main(["replay", "--config", str(config_path)]) == 0
    assert "1 permanent refusal" in capsys.readouterr().out
    assert calls_to(mailchimp_sandbox, "PUT", subscriber_hash("fake@example.org")) == 0
