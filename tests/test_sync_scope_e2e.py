"""Webhook-triggered runs read just what changed: `sync_scope pending_webhooks` through Meltano.

`meltano run` with TAP_EXACTONLINE_SYNC_SCOPE=pending_webhooks reads only the partitions the
webhook inbox names, and Meltano's saved state (`meltano state get`) still holds every other
bookmark exactly as before; the webhook service's default trigger command runs the job so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_pipeline import ROOT, Pipeline, make_pipeline, stop_service
from secret_store import SecretStore
from tap_exactonline.webhooks import WebhookInbox

SECRET = "webhook-secret-scope-e2e"
SERVICE = ROOT / ".venv" / "bin" / "exactmc-webhooks"


def partitions(pipeline: Pipeline) -> dict[tuple[str, int], dict[str, Any]]:
    """Meltano's saved bookmarks per (stream, division), without the SDK's per-run start value."""
    text = pipeline.state()
    state = json.loads(text[text.index("{"):])["singer_state"]
    return {(stream, p["context"]["division"]): {
        k: v for k, v in p.items() if k not in ("starting_replication_value", "context")}
        for stream, entry in state["bookmarks"].items() for p in entry.get("partitions", [])}


def data_calls(exact) -> int:
    return sum(n for endpoint, n in exact.calls()["by_endpoint"].items()
               if "oauth2" not in endpoint)


@pytest.fixture
def synced(meltano_plugins: None, exact_sandbox_factory: Any, mailchimp_sandbox_factory: Any,
           tmp_path: Path) -> Pipeline:
    exact = exact_sandbox_factory(accounts_per_division=5, seed=13, webhook_secret=SECRET,
                                  webhook_validation_delay=0)
    pipeline = make_pipeline(exact, mailchimp_sandbox_factory(), tmp_path)
    SecretStore(tmp_path / "secrets", pipeline.secrets["store_key"]).update(
        f"exactonline-{exact.client_id}-credentials", webhook_secret=SECRET)
    pipeline.run()  # the schedule's full first sync (scope all)
    return pipeline


def new_contact(exact, division: int, email: str) -> dict[str, Any]:
    account = next(a for a in exact.rows("Accounts", division) if not a["Blocked"])
    return exact.create("Contacts", {"Division": division, "Account": account["ID"],
                                     "FirstName": "Wim", "LastName": "Webhook", "Email": email})


def test_a_scoped_meltano_run_reads_the_named_partition_and_keeps_every_other_bookmark(synced):
    pipeline, exact = synced, synced.exact
    before = partitions(pipeline)
    assert len(before) == 7 * 3  # every stream × every division
    contact = new_contact(exact, 102, "wim@scoped.nl")
    new_contact(exact, 101, "unannounced@scoped.nl")  # no entry: for the schedule's run
    inbox = WebhookInbox(pipeline.inbox_url)  # where the tap finds it with no setting
    inbox.add({"Topic": "Contacts", "Division": 102, "Action": "Create", "Key": contact["ID"],
               "EventCreatedOn": "2026-01-01T00:00:00Z"})  # as the receiver records it

    pipeline.env["TAP_EXACTONLINE_SYNC_SCOPE"] = "pending_webhooks"
    exact.reset_calls()
    pipeline.run()
    members = pipeline.members()
    assert "wim@scoped.nl" in members and "unannounced@scoped.nl" not in members
    assert data_calls(exact) <= 3  # current/Me + system/Divisions + contacts of 102
    after = partitions(pipeline)
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k != ("contacts", 102)} == {
        k: v for k, v in before.items() if k != ("contacts", 102)}
    assert after[("contacts", 102)]["replication_key_value"] > before[("contacts", 102)][
        "replication_key_value"]
    assert inbox.pending() == []

    # Nothing pending: no Exact call, exit 0, Meltano's state untouched.
    exact.reset_calls()
    pipeline.run()
    assert data_calls(exact) == 0
    assert partitions(pipeline) == after

    # The schedule's run (scope all) finds the change no webhook announced.
    del pipeline.env["TAP_EXACTONLINE_SYNC_SCOPE"]
    pipeline.run()
    assert "unannounced@scoped.nl" in pipeline.members()


def test_the_services_default_trigger_runs_the_job_scoped_to_the_deliveries(synced):
    pipeline, exact = synced, synced.exact
    env = {**pipeline.env,
           "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "WEBHOOKS_CLIENT_ID": exact.client_id,
           "WEBHOOKS_SECRET_STORE_PATH": str(pipeline.workdir / "secrets"),
           "WEBHOOKS_MAILCHIMP_TRIGGER_COMMAND": "",
           "WEBHOOKS_DEBOUNCE_SECONDS": "1"}
    env.pop("WEBHOOKS_TRIGGER_COMMAND", None)  # the default command is what is tested
    log_path = pipeline.workdir / "service.log"
    process = subprocess.Popen([str(SERVICE), "serve", "--config", "ENV", "--port", "0"],
                               cwd=ROOT, env=env, stdout=log_path.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"\(http://([\d.:]+)\)", log_path.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        pipeline.env["TAP_EXACTONLINE_WEBHOOK_CALLBACK_URL"] = f"http://{found.group(1)}/exact"
        pipeline.invoke("tap-exactonline:webhooks-subscribe")
        before = partitions(pipeline)

        exact.reset_calls()
        new_contact(exact, 103, "wim@triggered.nl")  # Exact delivers Contacts/Create for 103
        deadline = time.monotonic() + 120
        while "Trigger exact: run 1 ended" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        assert "Trigger exact: run 1 ended ok" in log_path.read_text()
        assert "wim@triggered.nl" in pipeline.members()
        assert data_calls(exact) <= 3  # not the 22 of a whole run
        after = partitions(pipeline)
        assert {k: v for k, v in after.items() if k != ("contacts", 103)} == {
            k: v for k, v in before.items() if k != ("contacts", 103)}
    finally:
        stop_service(process)
