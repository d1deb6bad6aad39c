"""Issue 9: on a first sync the members' cost-center tags come from the invoices the flush
already reads for the orders, not from a second read of every invoice and line; and an
account's invoices are not looked up to dirty them (every invoice is dirty already).

The tags must be exactly those read from the store (`tags.account_cost_centers`): the same
keys, the same names (for a cost center without a row, the last line's description, in the
store's order), drafts and inactive cost centers left out. A run whose store already held
rows, or whose orders went out in an earlier flush than its members, reads them from the
store as before; both must agree. Counted, not timed: the reads of invoice lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from mapper_exact_mailchimp import store
from mapper_test_kit import (
    DIVISION,
    Output,
    account,
    contact,
    cost_center,
    fresh_store,
    invoice,
    line,
    rec,
    schema,
    state,
    tap_run,
)

CC = f"cc:{DIVISION}:"


def company() -> dict[str, list[dict[str, Any]]]:
    """Edge cases of an account's tags: an unknown cost center whose description differs per
    line (the last in the store's order wins), a draft's cost center (left out), an inactive
    cost center (left out), an account with invoices but no cost center, one without any."""
    return {  # tap-exactonline's stream order: orders and members wait for the last one
        "accounts": [account(1), account(2), account(3), account(4)],
        "contacts": [contact(1, 1), contact(2, 1), contact(3, 2), contact(4, 3),
                     contact(5, 4)],
        "cost_centers": [cost_center("100", "Retail"), cost_center("200", "Horeca"),
                         cost_center("400", "Concept"), cost_center("500", "Oud", Active=False)],
        "deletions": [],
        "receivables": [],
        "sales_invoice_lines": [
            line(1, 1, "100"), line(2, 1, "300", CostCenterDescription="Eerst"),
            line(3, 2, "300", CostCenterDescription="Laatst"), line(4, 2, "200"),
            line(5, 3, "400"),  # the draft's
            line(6, 4, "500"),  # inactive
            line(7, 4, "100"), line(8, 5, None)],
        "sales_invoices": [invoice(2, 1), invoice(1, 1), invoice(3, 1, Status=10),
                           invoice(4, 2), invoice(5, 3)],
    }


EXPECTED = {
    ("jan.contact1@example.nl", CC + "100", "CC 100 · Retail (101)"),
    ("jan.contact1@example.nl", CC + "200", "CC 200 · Horeca (101)"),
    ("jan.contact1@example.nl", CC + "300", "CC 300 · Laatst (101)"),
    ("jan.contact2@example.nl", CC + "100", "CC 100 · Retail (101)"),
    ("jan.contact2@example.nl", CC + "200", "CC 200 · Horeca (101)"),
    ("jan.contact2@example.nl", CC + "300", "CC 300 · Laatst (101)"),
    ("jan.contact3@example.nl", CC + "100", "CC 100 · Retail (101)"),
}


def member_tags(out: Output) -> list[tuple[str, str, str]]:
    return [(r["email"], r["tag_key"], r["tag_name"]) for r in out.records("member_tags")
            if r["active"]]


@pytest.fixture
def line_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Reads of rows by parent, per stream (each invoice's lines, each account's invoices)."""
    counted: Counter[str] = Counter()
    execute = store.Database.execute

    def counting(self: store.Database, statement: str, params: Sequence[Any] = ()) -> Any:
        if statement.startswith("SELECT data FROM rows") and "parent=?" in statement:
            counted[params[0]] += 1
        elif statement.startswith("SELECT id FROM rows") and "parent=?" in statement:
            counted[f"{params[0]} ids"] += 1
        return execute(self, statement, params)

    monkeypatch.setattr(store.Database, "execute", counting)
    return counted


def test_first_sync_reads_each_invoices_lines_once(run_mapper, line_reads) -> None:
    out = run_mapper(tap_run(company()))

    assert set(member_tags(out)) == EXPECTED
    # Lines of the 4 non-draft invoices, once each (for its order); no account's invoices
    # are read back for its members' tags (before: 4 + 4 lines and 4 accounts' invoices).
    assert line_reads["sales_invoice_lines"] == 4, line_reads
    assert line_reads["sales_invoices"] == 0, line_reads
    # Nor the accounts' invoice ids, to dirty the invoices again: they all are (before: 4).
    assert line_reads["sales_invoices ids"] == 0, line_reads


def test_tags_from_the_store_are_the_same(run_mapper, mapper_config, line_reads) -> None:
    first_sync = run_mapper(tap_run(company()))
    # A store that already holds a row (another division's cost center): read back as before.
    other = fresh_store(mapper_config, "held")
    run_mapper(tap_run({"cost_centers": [cost_center("900", "Elders", Division=7)]}), **other)
    line_reads.clear()
    from_store = run_mapper(tap_run(company()), **other)

    assert line_reads["sales_invoices"] == 4, line_reads  # each account's invoices, read back
    assert line_reads["sales_invoices ids"] == 4, line_reads  # and dirtied with the account
    assert member_tags(from_store) == member_tags(first_sync)
    assert set(member_tags(from_store)) == EXPECTED
    assert from_store.records() == first_sync.records()


def test_orders_flushed_before_members_leave_the_tags_to_the_store(run_mapper) -> None:
    # Every input of the orders is read before the cost centers come: the orders go out at
    # the STATE after the receivables, the members only at the end. Their tags are read from
    # the store then (the invoices are no longer dirty), and are the same.
    streams = company()
    ordered = [*(name for name in streams if name != "cost_centers"), "cost_centers"]
    messages: list[dict[str, Any]] = []
    for name in ordered:
        messages += [schema(name), *(rec(name, r) for r in streams[name])]
        messages.append(state({"bookmarks": {name: 1}}))
    out = run_mapper(messages)

    streams_out = [m["stream"] for m in out if m["type"] == "RECORD"]
    assert streams_out.index("orders") < streams_out.index("members")  # two flushes
    assert set(member_tags(out)) == EXPECTED
