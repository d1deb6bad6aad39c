"""API calls of a full tap-exactonline sync: how close to one call per 1,000 records?

Starts an Exact sandbox seeded with 10,000 accounts in total (plus their contacts, invoices,
receivables), runs a full sync of all divisions in-process (Singer output discarded, only
counted), and prints the sandbox's call counts.

    .venv/bin/python bench/bench_tap_calls.py [--accounts 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import sys
import tempfile
import time
from collections import Counter

from exactmc_sandbox.exact import ExactSandbox
from secret_store import generate_key
from tap_exactonline.tap import TapExactOnline

# Stream → the endpoint it reads (the two invoice streams share one feed).
STREAM_ENDPOINTS = {
    "accounts": "sync/CRM/Accounts",
    "contacts": "sync/CRM/Contacts",
    "sales_invoices": "sync/SalesInvoice/SalesInvoices",
    "sales_invoice_lines": "sync/SalesInvoice/SalesInvoices",
    "deletions": "sync/Deleted",
    "receivables": "bulk/Cashflow/Receivables",
    "cost_centers": "hrm/Costcenters",
}
MAIN_COMPANY_DIVISIONS = 3  # the sandbox's nl company: 101, 102, 103


class RecordCounter(io.TextIOBase):
    """A stdout that counts RECORD messages per stream and keeps nothing."""

    _record = re.compile(r'^\{"type":\s*"RECORD",\s*"stream":\s*"([^"]+)"')

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if match := self._record.match(line):
                self.counts[match.group(1)] += 1
        return len(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000, help="accounts in total")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the SDK's per-request metrics would drown the report

    per_division = -(-args.accounts // MAIN_COMPANY_DIVISIONS)
    print(f"Seeding the sandbox: {per_division} accounts in each of divisions 101-103 ...")
    # Rate limits raised so the benchmark measures calls, not waiting: Exact's real limits are
    # 60/minute and 5,000/day per division.
    sandbox = ExactSandbox(accounts_per_division=per_division, minutely_limit=1_000_000,
                           daily_limit=1_000_000)
    sandbox.start()
    try:
        with tempfile.TemporaryDirectory() as store:
            config = {
                "client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
                "refresh_token": sandbox.issue_refresh_token("nl"),
                "base_url": sandbox.base_url("nl"), "all_divisions": True,
                "token_store_path": store, "token_store_key": generate_key(),
            }
            sink = RecordCounter()
            started = time.monotonic()
            with contextlib.redirect_stdout(sink):
                TapExactOnline(config=config).sync_all()
            elapsed = time.monotonic() - started
        calls = sandbox.calls()["by_endpoint"]
    finally:
        sandbox.stop()

    print("NOTE: sandbox rate limits raised to 1,000,000/minute and /day for speed.")
    print(f"Full sync of all divisions in {elapsed:.1f} s "
          f"(accounts in total: {sum(len(sandbox.rows('Accounts', d)) for d in (101, 102, 103))})")
    print("\nCalls per endpoint:")
    for endpoint, count in sorted(calls.items()):
        print(f"  {endpoint:45} {count:6}")
    print(f"  {'TOTAL':45} {sum(calls.values()):6}")

    print("\nRecords per stream:")
    for stream in STREAM_ENDPOINTS:
        print(f"  {stream:45} {sink.counts[stream]:6}")

    print("\nCalls per 1,000 records (goal: about 1 on the 1,000-row feeds):")
    by_endpoint: dict[str, int] = Counter()
    for stream, endpoint in STREAM_ENDPOINTS.items():
        by_endpoint[endpoint] += sink.counts[stream]
    for endpoint, records in by_endpoint.items():
        made = calls.get(f"GET {endpoint}", 0)
        ratio = made / (records / 1000) if records else float("nan")
        pages = -(-records // 1000)
        print(f"  {endpoint:40} {made:4} calls / {records:6} records = {ratio:6.2f} per 1,000 "
              f"(lower bound {pages} pages; at least 1 call per division)")
    overhead = {k: v for k, v in calls.items() if not any(e in k for e in by_endpoint)}
    print(f"\nOverhead calls (token, divisions): {overhead}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
