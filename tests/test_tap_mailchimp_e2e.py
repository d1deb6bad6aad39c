"""tap-mailchimp through Meltano: settings from the environment, the Mailchimp key from the
encrypted store (its key only in SECRET_STORE_KEY), no secret in any file."""

from __future__ import annotations

import json
from typing import Any

import requests
from e2e_pipeline import make_pipeline
from tap_mailchimp.testing import record_events


def _records(output: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for line in output.splitlines():
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("type") == "RECORD":
                found.setdefault(message["stream"], []).append(message["record"])
    return found


def test_tap_mailchimp_under_meltano(exact_sandbox, mailchimp_sandbox, tmp_path):
    pipeline = make_pipeline(exact_sandbox, mailchimp_sandbox, tmp_path)
    pipeline.env["TAP_MAILCHIMP_RETRY_BACKOFF_FACTOR"] = "0.01"  # a number as text
    lists = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}"
    auth = ("test", mailchimp_sandbox.api_key)
    for email in ("ann@example.com", "bob@example.com"):
        answer = requests.post(f"{lists}/members", auth=auth, timeout=10,
                               json={"email_address": email, "status": "subscribed"})
        assert answer.status_code == 200, answer.text
    mailchimp_sandbox.set_member_status("ann@example.com", "unsubscribed")
    assert requests.post(f"{lists}/segments", auth=auth, timeout=10,
                         json={"name": "CC 100 · Sales (NL)", "static_segment": []}).ok
    record_events(pipeline.inbox_url, [json.dumps({  # as the webhook service records it
        "type": "cleaned", "fired_at": "2026-11-27T10:00:00Z",
        "list_id": mailchimp_sandbox.list_id, "email": "bob@example.com", "reason": "hard"})])

    result = pipeline.invoke("tap-mailchimp")

    records = _records(result.stdout)
    exclusions = {(r["email"], r["status"], r["source"]) for r in records["mailing_exclusions"]}
    assert exclusions == {("ann@example.com", "unsubscribed", "poll"),
                          ("bob@example.com", "cleaned", "webhook")}
    assert [t["name"] for t in records["tags"]] == ["CC 100 · Sales (NL)"]
    assert pipeline.files_with_secrets() == []
