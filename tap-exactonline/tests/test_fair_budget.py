"""A small daily budget is shared by every stream and division: each run makes progress on all of
them, and over successive runs (days) everything arrives exactly once."""

from __future__ import annotations

from collections import Counter

KEYS = {
    "accounts": ("Accounts", "ID"), "contacts": ("Contacts", "ID"),
    "sales_invoices": ("SalesInvoices", "InvoiceID"), "cost_centers": ("Costcenters", "ID"),
    "receivables": ("Receivables", "ID"), "deletions": ("Deleted", "ID"),
}
DIVISIONS = (101, 102)


def _expected(sandbox, stream: str) -> list[str]:
    if stream == "sales_invoice_lines":
        return [line["ID"] for d in DIVISIONS for inv in sandbox.rows("SalesInvoices", d)
                for line in inv["SalesInvoiceLines"]]
    entity, key = KEYS[stream]
    return [row[key] for d in DIVISIONS for row in sandbox.rows(entity, d)]


def _key(stream: str) -> str:
    return "ID" if stream == "sales_invoice_lines" else KEYS[stream][1]


def test_every_stream_and_division_progresses_each_day_and_all_arrives_once(
    exact_sandbox_factory, config_for, run_tap
):
    # Per division: 2 pages of accounts, 2 of contacts, 6 of the invoice feed, 2 of
    # receivables, 1 of cost centers and 1 of deletions; 8 calls a day.
    sandbox = exact_sandbox_factory(accounts_per_division=1100, daily_limit=8)
    # No Modified overlap: re-reading the last 5 minutes would re-send rows on purpose.
    config = config_for(sandbox, divisions=list(DIVISIONS), start_date="2000-01-01T00:00:00Z",
                        modified_overlap_seconds=0)

    runs, state = [], {}
    for _ in range(7):
        run = run_tap(config, state=state)
        runs.append(run)
        state = run.state
        sandbox.start_new_day()

    # The first day already reaches every stream of every division.
    first = runs[0]
    for stream in (*KEYS, "sales_invoice_lines"):
        assert {r["Division"] for r in first.records(stream)} == set(DIVISIONS), stream
    # Nothing was refused: each run stopped before the budget was gone.
    assert 429 not in [c["status"] for c in sandbox.calls()["calls"]]
    # After enough days: every row, exactly once.
    for stream in (*KEYS, "sales_invoice_lines"):
        received = Counter(r[_key(stream)] for run in runs for r in run.records(stream))
        assert sorted(received) == sorted(_expected(sandbox, stream)), stream
        assert max(received.values()) == 1, (stream, received.most_common(1))
    assert runs[-1].counts == Counter(), runs[-1].counts  # the last day finds nothing new


def test_when_calls_are_fewer_than_streams_the_starved_ones_go_first(
    exact_sandbox_factory, config_for, run_tap
):
    # 4 calls a day for 6 streams (system/Divisions takes one): three streams a day, in turn.
    sandbox = exact_sandbox_factory(accounts_per_division=5, daily_limit=4)
    config = config_for(sandbox, divisions=[101], start_date="2000-01-01T00:00:00Z")

    runs, state = [], {}
    for _ in range(2):
        run = run_tap(config, state=state)
        runs.append(run)
        state = run.state
        sandbox.start_new_day()

    first, second = (set(run.counts) for run in runs)
    assert first and second
    assert first.isdisjoint(second - {"sales_invoice_lines"})
    assert {"accounts", "contacts", "sales_invoices", "cost_centers", "receivables",
            "deletions"} <= first | second
    assert 429 not in [c["status"] for c in sandbox.calls()["calls"]]
