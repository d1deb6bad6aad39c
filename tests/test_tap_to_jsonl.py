"""The tap feeds any Singer target: `meltano run tap-exactonline target-jsonl`."""

from __future__ import annotations

import json
from pathlib import Path

JSONL = ["tap-exactonline", "target-jsonl"]


def read_stream(directory: Path, stream: str) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(directory.glob(f"{stream}-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    return rows


def test_tap_into_target_jsonl_full_then_incremental(pipeline, tmp_path: Path) -> None:
    out = tmp_path / "jsonl"
    out.mkdir()
    pipeline.env["TARGET_JSONL_DESTINATION_PATH"] = str(out)
    exact = pipeline.exact

    first = pipeline.run(plugins=JSONL)
    accounts = read_stream(out, "accounts")
    expected_ids = {a["ID"] for d in (101, 102, 103) for a in exact.rows("Accounts", division=d)}
    assert {a["ID"] for a in accounts} == expected_ids
    assert {a["Division"] for a in accounts} == {101, 102, 103}
    assert all(a["Code"] == a["Code"].strip() for a in accounts)
    lines = read_stream(out, "sales_invoice_lines")
    expected_lines = sum(
        len(i["SalesInvoiceLines"]) for d in (101, 102, 103) for i in exact.rows("SalesInvoices", d)
    )
    assert len(lines) == expected_lines
    assert "Incremental state has been updated" in first.stderr + first.stdout
    for secret in pipeline.secrets.values():
        assert secret not in first.stdout + first.stderr
        assert secret not in pipeline.state("dev:tap-exactonline-to-target-jsonl")

    # Only what changed comes through the second time.
    for path in out.iterdir():
        path.unlink()
    account = exact.rows("Accounts", division=102)[0]
    exact.update("Accounts", account["ID"], {"City": "Gent"})
    pipeline.run(plugins=JSONL)
    changed = read_stream(out, "accounts")
    assert [(a["ID"], a["City"]) for a in changed] == [(account["ID"], "Gent")]
    assert read_stream(out, "contacts") == []
