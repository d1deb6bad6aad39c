"""`target-mailchimp-admin check` against the Mailchimp sandbox: healthy, invalid key, missing
list, a store on another audience, missing merge fields; read-only; exit codes and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from target_mailchimp.admin import main
from target_mailchimp.check import MailchimpCheck
from target_mailchimp.testing import base_config, run_target, stream


def _problems(report: Any) -> list[str]:
    return [f["message"] for f in report.findings if f["level"] != "ok"]


def test_healthy_setup_passes_and_writes_nothing(mailchimp_sandbox, tmp_path: Path, capsys):
    config = base_config(mailchimp_sandbox, tmp_path)
    mailchimp_sandbox.reset_calls()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["check", "--config", str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["list_id"] == mailchimp_sandbox.list_id
    assert out["data_center"] == mailchimp_sandbox.api_key.rsplit("-", 1)[1]
    calls = mailchimp_sandbox.calls()
    assert out["mailchimp_calls"] == calls["total"] <= 7
    assert all(method == "GET" for method in (c["method"] for c in calls["calls"]))
    assert "exact-store" in {m["message"].split("'")[1] for m in out["findings"]
                             if "store" in m["message"]}

    assert main(["check", "--config", str(path)]) == 0
    assert "target-mailchimp check: all is well." in capsys.readouterr().out


def test_invalid_key_and_missing_list_are_errors(mailchimp_sandbox, tmp_path: Path):
    config = base_config(mailchimp_sandbox, tmp_path)
    report = MailchimpCheck({**config, "api_key": "0" * 32 + "-us6"}).run()
    assert report.exit_code == 2
    [problem] = _problems(report)
    assert problem.startswith("Mailchimp refused the API key")
    assert "set-credential" in problem

    report = MailchimpCheck({**config, "list_id": "nosuchlist"}).run()
    assert report.exit_code == 2
    [problem] = _problems(report)
    assert problem.startswith("The audience 'nosuchlist' does not exist")
    assert mailchimp_sandbox.list_id in problem  # names the audiences there are

    report = MailchimpCheck({**config, "secret_store_path": str(tmp_path / "empty"),
                             "secret_store_key": None, "api_key": None}).run()
    assert report.exit_code == 2 and "set-credential" in _problems(report)[0]


def test_store_on_another_audience_and_missing_merge_fields(mailchimp_sandbox, tmp_path: Path):
    config = base_config(mailchimp_sandbox, tmp_path)
    run_target(config, stream("products", [{"id": "p1", "title": "P", "price": 1.0}]))
    report = MailchimpCheck({**config, "create_missing_merge_fields": False,
                             "merge_field_map": {"vat": "VATNUM"}}).run()
    assert report.status == "warning"
    [problem] = _problems(report)
    assert "VATNUM" in problem and "create_missing_merge_fields is off" in problem

    # Another audience of the same account: the store stays tied to the first one.
    with mailchimp_sandbox.context.state.lock:
        mailchimp_sandbox.context.state.add_list("otherlist01", "Other audience")
    report = MailchimpCheck({**config, "list_id": "otherlist01"}).run()
    assert report.exit_code == 2
    [problem] = _problems(report)
    assert problem.startswith("The e-commerce store 'exact-store' belongs to audience")
    assert "set store_id to a new id" in problem
    report = MailchimpCheck({**config, "list_id": "otherlist01", "store_id": "new-one"}).run()
    assert report.status == "ok"
    assert any("'new-one' does not exist yet" in f["message"] for f in report.findings)
