"""How many Mailchimp calls does target-mailchimp make to load 10,000 members?

Starts a Mailchimp sandbox, feeds the target 10,000 members (Singer messages generated here),
then prints the sandbox's call counts per endpoint and the total. Goal: at most ~25 calls.
A second pass re-sends the same members (all existing now) and prints its counts too.

    .venv/bin/python bench/bench_target_calls.py [--members 10000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time

from exactmc_sandbox.mailchimp import MailchimpSandbox
from target_mailchimp.testing import run_target, state, stream

GOAL = 25


def members(count: int) -> list[dict]:
    return [{"email": f"member{i}@example.com", "source_key": str(i),
             "source_updated_at": "2024-01-01T00:00:00Z",
             "merge_fields": {"FNAME": f"First{i}", "LNAME": f"Last{i}", "KVK": str(10000 + i)}}
            for i in range(count)]


def report(title: str, calls: dict, seconds: float) -> int:
    print(f"\n{title} ({seconds:.1f}s)")
    for endpoint, count in sorted(calls["by_endpoint"].items()):
        print(f"  {count:6d}  {endpoint}")
    print(f"  {calls['total']:6d}  TOTAL (max in flight seen: "
          f"{calls.get('max_in_flight_seen_overall', '?')})")
    return calls["total"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("singer_sdk.metrics").setLevel(logging.WARNING)
    sandbox = MailchimpSandbox(batch_start_delay=0.05)
    sandbox.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = {"api_key": sandbox.api_key, "base_url": sandbox.api_base,
                      "list_id": sandbox.list_id, "default_status_if_new": "subscribed",
                      "audit_store_url": f"sqlite:///{tmp}/audit.sqlite",
                      "batch_poll_interval": 0.2}
            messages = [*stream("members", members(args.members)), state({"bench": 1})]
            started = time.monotonic()
            run_target(config, messages)
            first = report(f"First load of {args.members} members", sandbox.calls(),
                           time.monotonic() - started)
            loaded = len(sandbox.members())
            sandbox.reset_calls()
            started = time.monotonic()
            run_target(config, messages)
            report("Same members again (all exist)", sandbox.calls(), time.monotonic() - started)
    finally:
        sandbox.stop()
    print(f"\nMembers in the audience: {loaded}; first load used {first} calls "
          f"(goal <= {GOAL}).")
    return 0 if first <= GOAL and loaded == args.members else 1


if __name__ == "__main__":
    sys.exit(main())
