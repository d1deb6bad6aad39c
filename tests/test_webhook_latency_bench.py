"""The latency bench, in small: every kind of Exact change reaches Mailchimp through webhooks.

How fast is the bench's figure (README "Performance": within a minute), not an assertion here:
on a busy CI machine a Meltano run alone can take a minute. The test waits up to 5 minutes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from e2e_pipeline import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from bench_webhook_latency import main
from webhook_receivers import ServiceReceiver

RECEIVERS = ["tap-loop", pytest.param("service", marks=pytest.mark.skipif(
    not ServiceReceiver.available(), reason="exactmc-webhooks is not installed"))]


@pytest.mark.parametrize("receiver", RECEIVERS)
def test_every_kind_of_change_lands_through_webhooks(meltano_plugins: None, tmp_path: Path,
                                                     receiver: str) -> None:
    output = tmp_path / "latency.json"
    assert main(["--changes", "4", "--passes", "1", "--receiver", receiver,
                 "--accounts-per-division", "20", "--settle", "300",
                 "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    (only,) = result["passes"]
    assert only["converged"] == only["changes"] == 4  # one of each kind
    assert {kind: k["converged"] for kind, k in only["by_kind"].items()} == {
        "new customer": 1, "address change": 1, "payment": 1, "new invoice": 1}
    assert only["deliveries_sent"] >= 4 and only["job_runs"] >= 1
