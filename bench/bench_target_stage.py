"""The target alone on a pipeline-like input: Mailchimp calls, CPU, peak memory per 1,000 records.

Generates what the mapper sends for N accounts (a member, a member tag, a customer and one or
two orders each; 3 tags, 20 products; a STATE every 1,000 accounts), starts a Mailchimp
sandbox in its own process, runs `target-mailchimp` under `/usr/bin/time -v` and prints the
sandbox's calls by endpoint, calls per 1,000 records, the target's CPU seconds per 1,000
records against the floor (`json.loads` + `json.dumps` of the same lines) and its peak RSS.

    .venv/bin/python bench/bench_target_stage.py --accounts 10000 [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import requests

BIN = Path(sys.executable).parent
KEY = "0123456789abcdef0123456789abcdef-us6"
STR = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}
BOOL = {"type": ["boolean", "null"]}
NUM = {"type": ["number", "null"]}
SCHEMAS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "members": ({"email": STR, "source_key": STR, "source_updated_at": TIME,
                 "status_if_new": STR, "opt_out": BOOL,
                 "merge_fields": {"type": ["object", "null"], "properties": {
                     "FNAME": STR, "LNAME": STR, "COMPANY": STR}}}, ["email"]),
    "tags": ({"tag_key": STR, "name": STR, "active": BOOL}, ["tag_key"]),
    "member_tags": ({"email": STR, "tag_key": STR, "tag_name": STR, "active": BOOL,
                     "source_updated_at": TIME}, ["email", "tag_key"]),
    "customers": ({"id": STR, "email": STR, "opt_in_status": BOOL, "first_name": STR,
                   "last_name": STR, "company": STR,
                   "address": {"type": ["object", "null"], "properties": {
                       "address1": STR, "city": STR, "postal_code": STR,
                       "country_code": STR}}}, ["id"]),
    "products": ({"id": STR, "title": STR, "sku": STR, "price": NUM}, ["id"]),
    "orders": ({"id": STR, "customer_id": STR, "currency_code": STR, "order_total": NUM,
                "tax_total": NUM, "financial_status": STR, "processed_at_foreign": TIME,
                "updated_at_foreign": TIME, "lines": {"type": ["array", "null"], "items": {
                    "type": "object", "properties": {
                        "id": STR, "product_id": STR, "product_variant_id": STR,
                        "quantity": NUM, "price": NUM}}}}, ["id"]),
}


def generate(accounts: int, out: TextIO) -> None:
    def write(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")

    def record(stream: str, row: dict[str, Any]) -> None:
        write({"type": "RECORD", "stream": stream, "record": row})

    for stream, (props, keys) in SCHEMAS.items():
        write({"type": "SCHEMA", "stream": stream, "key_properties": keys,
               "schema": {"type": "object", "properties": props}})
    for t in range(3):
        record("tags", {"tag_key": f"seg{t}", "name": f"Segment {t}", "active": True})
    for p in range(20):
        record("products", {"id": f"P{p}", "title": f"Product {p}", "sku": f"SKU{p}",
                            "price": 10.0 + p})
    order = 0
    for i in range(accounts):
        email, stamp = f"acct{i}@example.com", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z"
        record("members", {"email": email, "source_key": f"A{i}", "source_updated_at": stamp,
                           "status_if_new": "transactional", "opt_out": False,
                           "merge_fields": {"FNAME": f"F{i}", "LNAME": f"L{i}",
                                            "COMPANY": f"Co {i}"}})
        record("member_tags", {"email": email, "tag_key": f"seg{i % 3}",
                               "tag_name": f"Segment {i % 3}", "active": True,
                               "source_updated_at": stamp})
        record("customers", {"id": f"A{i}", "email": email, "opt_in_status": False,
                             "first_name": f"F{i}", "last_name": f"L{i}", "company": f"Co {i}",
                             "address": {"address1": f"Street {i}", "city": "Delft",
                                         "postal_code": "2611", "country_code": "NL"}})
        for _ in range(1 + (i % 5 == 0)):
            record("orders", {"id": f"O{order}", "customer_id": f"A{i}", "currency_code": "EUR",
                              "order_total": 121.0, "tax_total": 21.0, "financial_status": "paid",
                              "processed_at_foreign": stamp, "updated_at_foreign": stamp,
                              "lines": [{"id": "1", "product_id": f"P{order % 20}",
                                         "product_variant_id": f"P{order % 20}",
                                         "quantity": 2, "price": 50.0}]})
            order += 1
        if i % 1000 == 999:
            write({"type": "STATE", "value": {"bookmarks": {"accounts": i}}})
    write({"type": "STATE", "value": {"bookmarks": {"accounts": accounts}}})


def floor_cpu(path: Path) -> float:
    started = time.process_time()
    with path.open() as lines:
        for line in lines:
            json.dumps(json.loads(line))
    return time.process_time() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--keep", help="directory for input, config, audit DB and logs")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-target-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "input.jsonl"
    with source.open("w") as out:
        generate(args.accounts, out)
    lines = sum(1 for _ in source.open())
    port = free_port()
    sandbox = subprocess.Popen(
        [str(BIN / "exactmc-sandbox"), "mailchimp", "--port", str(port), "--api-key", KEY,
         "--list-id", "L1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/_sandbox/calls", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        config = work / "config.json"
        config.write_text(json.dumps({
            "api_key": KEY, "base_url": f"{base}/3.0", "list_id": "L1", "store_id": "s1",
            "store_name": "Bench", "audit_store_url": f"sqlite:///{work}/audit.sqlite"}))
        started = time.monotonic()
        with source.open() as stdin, (work / "state.out").open("w") as stdout, \
                (work / "target.err").open("w") as stderr:
            done = subprocess.run(["/usr/bin/time", "-v", str(BIN / "target-mailchimp"),
                                   "--config", str(config)],
                                  stdin=stdin, stdout=stdout, stderr=stderr, check=False)
        wall = time.monotonic() - started
        calls = requests.get(f"{base}/_sandbox/calls", timeout=30).json()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    log = (work / "target.err").read_text()

    def measure(label: str) -> float:
        found = re.search(rf"{label}: ([\d.]+)", log)
        return float(found.group(1)) if found else float("nan")

    cpu = measure(r"User time \(seconds\)") + measure(r"System time \(seconds\)")
    floor = floor_cpu(source)
    print(f"target-mailchimp, {args.accounts} accounts, {lines} input lines, exit "
          f"{done.returncode}, wall {wall:.1f} s (work dir {work})")
    for endpoint, count in sorted(calls["by_endpoint"].items()):
        print(f"  {count:6d}  {endpoint}")
    print(f"  {calls['total']:6d}  calls, {calls['total'] / lines * 1000:.2f} per 1,000 records")
    print(f"  CPU {cpu:.2f} s = {cpu / lines * 1000:.3f} s per 1,000 records; floor "
          f"{floor / lines * 1000:.4f} s per 1,000 ({cpu / floor:.0f}x the floor)")
    rss = measure(r"Maximum resident set size \(kbytes\)") / 1024
    print(f"  peak RSS {rss:.0f} MB")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
