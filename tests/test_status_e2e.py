"""`meltano invoke target-mailchimp:status` after one real `meltano run` with one write Mailchimp
refuses and one Exact contact the mapper rejects. (The checks run in-process in the plugins'
tests; `test_commands_wired` checks meltano.yml names them.)

One pipeline run serves every assertion (CI time)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from e2e_pipeline import MELTANO, ROOT
from target_mailchimp.status import render_text

HICCUP = {"title": "Invalid Resource", "status": 400, "detail": "Temporary validation hiccup"}


def test_status_after_a_run_with_a_failing_write_and_a_rejected_record(pipeline) -> None:
    exact = pipeline.exact
    account = next(a for a in exact.rows("Accounts", 101) if a.get("Status") == "C")
    bad = exact.create("Contacts", {"Division": 101, "Account": account["ID"],
                                    "FirstName": "No", "LastName": "Address",
                                    "Email": "not-an-address", "BusinessEmail": None})
    pipeline.env["TARGET_MAILCHIMP_BATCH_OPERATIONS_THRESHOLD"] = "0"  # direct PUTs
    pipeline.mailchimp.add_fault(path=r"/ecommerce/stores/[^/]+/products/", method="PUT",
                                 kind="status", status=400, count=1, body=HICCUP)
    pipeline.run(check=False)

    result = pipeline.meltano("invoke", "target-mailchimp:status", "--format", "json",
                              check=False)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    status = json.loads(result.stdout[result.stdout.index("{"):])
    assert status["status"] == "attention"

    mailchimp = status["mailchimp"]
    last = mailchimp["last_successful_run"]
    assert last is not None and mailchimp["runs_since_with_errors"] == []
    written = {kind: outcomes for kind, outcomes in last["writes"].items()}
    assert any(kind.startswith("members") and outcomes.get("ok") for kind, outcomes
               in written.items()), written
    assert any(kind.startswith("products") and outcomes.get("failed") == 1
               for kind, outcomes in written.items()), written

    failing = mailchimp["failing_writes"]
    hiccups = [g for g in failing["by_reason"] if "Temporary validation hiccup" in g["reason"]]
    assert failing["count"] >= 1 and hiccups, failing
    assert hiccups[0]["class"] == "retriable"
    assert hiccups[0]["newest"][0]["stream"] == "products"

    rejected = status["rejected_records"]
    examples = [e for g in rejected["by_reason"] if g["reason"].startswith("no usable email")
                for e in g["newest"]]
    assert {"stream": "contacts", "division": 101, "key": bad["ID"]} in [
        {k: e[k] for k in ("stream", "division", "key")} for e in examples]

    exact_side = status["exact"]
    records = exact_side["last_successful_run"]["records"]
    divisions = (101, 102, 103)  # the nl company's (the sandbox's be company is not read)
    assert records["accounts"] == sum(len(exact.rows("Accounts", d)) for d in divisions)
    assert records["contacts"] == sum(len(exact.rows("Contacts", d)) for d in divisions)
    assert set(exact_side["budget_today"]) == {"101", "102", "103"}
    assert all(b["used"] > 0 and b["limit"] for b in exact_side["budget_today"].values())
    assert exact_side["refresh_token"]["age_days"] < 1
    problems = " ".join(status["problems"])
    assert "still failing" in problems and "replay" in problems

    text = render_text(status)  # the plain-text form of the same report
    assert "Writes still failing:" in text and "Temporary validation hiccup" in text
    assert "Records rejected by the mapper:" in text and "no usable email" in text
    assert "Exact budget today, division 101:" in text

    # The whole job's check (scripts/check.sh) on the same, healthy, connections: both plugins'
    # checks run through Meltano and all is well (the refused product is not a connection problem).
    check = subprocess.run(["bash", str(ROOT / "scripts" / "check.sh"), "--format", "json"],
                           cwd=ROOT, env={**pipeline.env, "MELTANO": str(MELTANO)},
                           capture_output=True, text=True, timeout=300, check=False)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    decoder, text, reports = json.JSONDecoder(), check.stdout, []
    while "{" in text:  # one (indented) JSON document per check, between Meltano's log lines
        report, end = decoder.raw_decode(text, text.index("{"))
        reports.append(report)
        text = text[end:]
    assert [r["status"] for r in reports] == ["ok", "ok"], reports


def test_commands_wired() -> None:
    """meltano.yml's check/status commands name executables the plugins install, with the
    arguments their parsers take."""
    plugins = {p["name"]: p for kind in yaml.safe_load((ROOT / "meltano.yml").read_text())[
        "plugins"].values() for p in kind}
    wired = {(name, command): spec for name in ("tap-exactonline", "target-mailchimp")
             for command, spec in plugins[name]["commands"].items()}
    assert wired[("tap-exactonline", "check")]["args"] == "--config ENV"
    assert wired[("target-mailchimp", "check")]["args"] == "check --config ENV"
    assert wired[("target-mailchimp", "status")]["args"] == "status --config ENV"
    bin_dir = Path(sys.executable).parent
    for name, command in (("tap-exactonline", "check"), ("target-mailchimp", "status")):
        assert shutil.which(wired[(name, command)]["executable"], path=str(bin_dir))
