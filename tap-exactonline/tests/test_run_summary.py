"""The run summary a sync leaves for `target-mailchimp:status`: records per stream, Exact's
budget per division, the refresh token's issue time; a failed run keeps the last good one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_a_run_leaves_its_counts_and_budget(exact_sandbox, config_for, run_tap, tmp_path: Path):
    summary = tmp_path / "last-run.json"
    config = config_for(exact_sandbox, divisions=[101], run_summary_path=str(summary))
    run = run_tap(config, select=["accounts", "contacts"])
    document = json.loads(summary.read_text())
    last = document["last"]
    assert document["last_ok"] == last and last["outcome"] == "ok"
    assert last["records"] == {"accounts": run.counts["accounts"],
                               "contacts": run.counts["contacts"]}
    assert run.counts["accounts"] > 0
    budget = last["budget"]["101"]
    assert budget["daily_limit"] == 5000
    assert 0 < budget["daily_remaining"] < 5000 and budget["daily_reset"]
    assert last["refresh_token_issued_at"] and last["divisions"] == [101]

    exact_sandbox.add_fault(path="sync/CRM/Accounts", kind="status", status=400, count=1)
    with pytest.raises(Exception, match="400"):  # the run fails; its summary says so
        run_tap(config, select=["accounts"])
    failed = json.loads(summary.read_text())
    assert failed["last"]["outcome"] == "failed" and "400" in failed["last"]["error"]
    assert failed["last_ok"] == last
