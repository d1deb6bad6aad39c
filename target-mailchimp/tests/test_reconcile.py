"""Reconcile mode in-process against the Mailchimp sandbox: one normal sync, drift made by hand
in Mailchimp, then a dry run (nothing written), the reconcile (exactly the drift repaired,
newest wins), a second reconcile (nothing written), and the guard against a partial input."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from target_mailchimp.client import subscriber_hash
from target_mailchimp.heal import UnhealedWrites
from target_mailchimp.testing import (
    audit_rows,
    base_config,
    by_email,
    run_target,
    state,
    stream,
)

PAST = "2026-01-01T10:00:00+00:00"
FUTURE = "2099-01-01T10:00:00+00:00"  # Exact's record changed after the hand edit
OLDER, NEWER, STRAY, UNSUB, WEBSITE = ("older@x.nl", "newer@x.nl", "stray@x.nl", "unsub@x.nl",
                                       "website@x.nl")
# Excluded in Exact since the sync (or inactive by time alone: the mapper sends opt_out);
# EXCLUDED was also edited by hand in Mailchimp after Exact's record.
IDLE, EXCLUDED = "idle@x.nl", "excluded@x.nl"
MISSING = "missing@x.nl"  # in Exact, not in the audience: created, never subscribed
TAG = {"tag_key": "cc:101:300", "name": "CC 300"}


def member(email: str, name: str, updated: str = PAST, **extra: Any) -> dict[str, Any]:
    return {"email": email, "source_updated_at": updated, "status_if_new": "transactional",
            "merge_fields": {"FNAME": name}, **extra}


def order(status: str) -> dict[str, Any]:
    return {"id": "o1", "customer_id": "c1", "currency_code": "EUR", "order_total": 10.0,
            "financial_status": status, "lines": [{"id": "l1", "product_id": "p1",
                                                   "quantity": 1, "price": 10.0}]}


def messages(members: list[dict[str, Any]], order_status: str) -> list[dict[str, Any]]:
    return [*stream("members", members), *stream("tags", [TAG]),
            *stream("member_tags", [{"email": OLDER, "tag_key": TAG["tag_key"],
                                     "tag_name": TAG["name"], "active": True,
                                     "source_updated_at": members[0]["source_updated_at"]}]),
            *stream("customers", [{"id": "c1", "email": OLDER, "opt_in_status": False}]),
            *stream("products", [{"id": "p1", "title": "Widget", "price": 10.0}]),
            *stream("orders", [order(order_status)])]


def by_hand(sandbox: Any, method: str, path: str, body: Any) -> None:
    answer = requests.request(method, f"{sandbox.api_base}/{path}", json=body,
                              auth=("x", sandbox.api_key), timeout=10)
    assert answer.status_code < 300, answer.text


def tags_of(entry: dict[str, Any]) -> set[str]:
    return {t["name"] if isinstance(t, dict) else t for t in entry.get("tags") or []}


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """What the target logs (the SDK's handlers write to the real stderr, not captured)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(logging.INFO)
    loggers = [logging.getLogger(name) for name in ("target-mailchimp",
                                                    "target_mailchimp.reconcile")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield lines
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def synced(mailchimp_sandbox: Any, tmp_path: Path) -> dict[str, Any]:
    """A normal sync, then drift: hand edits older and newer than Exact, a missed payment,
    an unsubscribe, a website sign-up; STRAY will be in no record of the full read."""
    # 1 of these 6 members is a stray: a bigger share than a real audience would lose.
    config = base_config(mailchimp_sandbox, tmp_path, default_status_if_new="transactional",
                         reconcile_max_archive_share=0.5)
    everyone = [member(OLDER, "Olga"), member(NEWER, "Nina"), member(STRAY, "Stan"),
                member(UNSUB, "Uma"), member(IDLE, "Ida"), member(EXCLUDED, "Eva")]
    run_target(config, messages(everyone, "pending"))
    mailchimp_sandbox.advance_clock(2)  # a hand edit is not in the second of our own write
    members_path = f"lists/{mailchimp_sandbox.list_id}/members"
    by_hand(mailchimp_sandbox, "PATCH", f"{members_path}/{subscriber_hash(OLDER)}",
            {"merge_fields": {"FNAME": "Hand Edited"}})
    by_hand(mailchimp_sandbox, "POST", f"{members_path}/{subscriber_hash(OLDER)}/tags",
            {"tags": [{"name": TAG["name"], "status": "inactive"}]})
    for email in (NEWER, EXCLUDED):
        by_hand(mailchimp_sandbox, "PATCH", f"{members_path}/{subscriber_hash(email)}",
                {"merge_fields": {"FNAME": "Kept By Hand"}})
    mailchimp_sandbox.set_member_status(UNSUB, "unsubscribed")
    by_hand(mailchimp_sandbox, "POST", members_path,
            {"email_address": WEBSITE, "status": "subscribed"})
    # The full read: OLDER's record changed in Exact after the hand edit; the order was paid.
    full_read = messages([member(OLDER, "Olga", FUTURE), member(NEWER, "Nina"),
                          member(UNSUB, "Uma"), member(IDLE, "Ida", opt_out=True),
                          member(EXCLUDED, "Eva", opt_out=True),
                          member(MISSING, "Mia", status_if_new="subscribed")], "paid")
    return {"config": config, "full_read": full_read}


def test_dry_run_then_reconcile_repairs_exactly_the_drift_then_nothing(
        synced: dict[str, Any], mailchimp_sandbox: Any,
        log_lines: list[str]) -> None:
    config, full_read = synced["config"], synced["full_read"]
    before = by_email(mailchimp_sandbox)
    orders_before = mailchimp_sandbox.store("exact-store")["orders"]

    mailchimp_sandbox.reset_calls()
    run_target({**config, "reconcile": True, "dry_run": True}, full_read)
    assert _writes(mailchimp_sandbox) == 0
    assert by_email(mailchimp_sandbox) == before
    assert audit_rows(config, stream="reconcile") == []
    assert ("would repair archive 1, member 3, member_tags 1, order 1, unsubscribe 1"
            in "\n".join(log_lines))

    mailchimp_sandbox.reset_calls()
    run_target({**config, "reconcile": True}, full_read)
    after = by_email(mailchimp_sandbox)
    assert after[OLDER]["merge_fields"]["FNAME"] == "Olga"  # Exact newer: put back
    assert TAG["name"] in tags_of(after[OLDER])
    assert after[NEWER]["merge_fields"]["FNAME"] == "Kept By Hand"  # Mailchimp newer: kept
    assert after[STRAY]["status"] == "archived"
    assert after[UNSUB]["status"] == "unsubscribed"
    assert after[WEBSITE] == before[WEBSITE]  # not the connector's: untouched
    assert after[IDLE]["status"] == after[EXCLUDED]["status"] == "unsubscribed"
    assert after[EXCLUDED]["merge_fields"]["FNAME"] == "Kept By Hand"  # consent, not fields
    assert after[MISSING]["status"] == "transactional"  # the record asked for subscribed
    assert {e for e in after if after[e] != before.get(e)} == {OLDER, STRAY, IDLE, EXCLUDED,
                                                               MISSING}
    assert mailchimp_sandbox.store("exact-store")["orders"]["o1"]["financial_status"] == "paid"
    assert orders_before["o1"]["financial_status"] == "pending"
    repairs = {(r["record_key"], r["operation"]) for r in audit_rows(
        config, stream="reconcile", outcome="ok")}
    assert repairs == {(OLDER, "member"), (f"{OLDER}/{TAG['tag_key']}", "member_tags"),
                       (STRAY, "archive"), ("o1", "order"), (IDLE, "member"),
                       (EXCLUDED, "unsubscribe"), (MISSING, "member")}
    assert [r["record_key"] for r in audit_rows(config, stream="reconcile",
                                                outcome="skipped")] == [NEWER]
    log = "\n".join(log_lines)
    assert "Reconcile: repaired archive 1, member 3, member_tags 1, order 1, unsubscribe 1" in log
    assert "Mailchimp calls (" in log

    mailchimp_sandbox.reset_calls()
    log_lines.clear()
    run_target({**config, "reconcile": True}, full_read)
    assert _writes(mailchimp_sandbox) == 0, mailchimp_sandbox.calls()["by_endpoint"]
    assert "Reconcile: repaired nothing" in "\n".join(log_lines)


def test_a_partial_or_empty_input_archives_nobody_and_exits_3(
        synced: dict[str, Any], mailchimp_sandbox: Any) -> None:
    """5 of the 6 members this target wrote missing: not a full read, so no archive at all."""
    config = {**synced["config"], "reconcile": True}
    partial = messages([member(OLDER, "Olga", FUTURE)], "paid")
    with pytest.raises(UnhealedWrites) as stopped:
        run_target(config, partial)
    assert stopped.value.code == 3
    members = by_email(mailchimp_sandbox)
    assert all(m["status"] != "archived" for m in members.values())
    assert members[OLDER]["merge_fields"]["FNAME"] == "Olga"  # the rest is still repaired

    # A read the tap says stopped early (its last STATE): nobody archived either.
    with pytest.raises(UnhealedWrites):
        run_target(config, [*synced["full_read"],
                            state({"bookmarks": {}, "incomplete_read": True})])
    assert by_email(mailchimp_sandbox)[STRAY]["status"] != "archived"

    mailchimp_sandbox.reset_calls()  # no member at all: nothing is done
    with pytest.raises(UnhealedWrites):
        run_target(config, stream("orders", [order("refunded")]))
    assert _writes(mailchimp_sandbox) == 0


def _writes(sandbox: Any) -> int:
    return sum(n for label, n in sandbox.calls()["by_endpoint"].items()
               if not label.startswith("GET "))
