"""sync_scope pending_webhooks: a run reads only the partitions real webhook deliveries named.

The Exact sandbox delivers signed webhooks to the tap's own receiver; the tap then runs against
the sandbox over HTTP and its call counter shows what was read.
"""

from __future__ import annotations

import json
import threading

import pytest
from tap_exactonline.subscriptions import Subscriptions
from tap_exactonline.sync_scope import SyncScope, entry_partitions
from tap_exactonline.webhook_server import WebhookServer
from tap_exactonline.webhooks import WebhookInbox

SECRET = "webhook-secret-for-tests"
DIVISIONS = [101, 102, 103]


def data_calls(sandbox) -> dict[str, int]:
    return {endpoint: n for endpoint, n in sandbox.calls()["by_endpoint"].items()
            if "oauth2" not in endpoint}


def write_json(path, value) -> object:
    path.write_text(json.dumps(value))
    return path


def partition_states(state: dict) -> dict[tuple[str, int], dict]:
    """(stream, division) → its bookmark, without the SDK's per-run starting value."""
    return {(stream, p["context"]["division"]): {
        k: v for k, v in p.items() if k not in ("starting_replication_value", "context")}
        for stream, entry in state["bookmarks"].items() for p in entry.get("partitions", [])}


@pytest.fixture
def webhooked(exact_sandbox_factory, config_for, tmp_path):
    """A 3-division sandbox delivering every topic to a receiver; config with scope pending."""
    sandbox = exact_sandbox_factory(accounts_per_division=8, webhook_secret=SECRET)
    inbox = WebhookInbox(tmp_path / "inbox.sqlite")
    server = WebhookServer("127.0.0.1", 0, SECRET, inbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = config_for(sandbox, divisions=DIVISIONS, webhook_inbox_url=inbox.url)
    list(Subscriptions(config).subscribe(
        DIVISIONS, ["Accounts", "Contacts", "SalesInvoices"],
        f"http://127.0.0.1:{server.port}/exact"))
    yield sandbox, inbox, config
    server.close()


def test_topics_map_to_the_partitions_that_read_them():
    assert entry_partitions({"Topic": "Accounts", "Division": 101, "Action": "Update"}) == {
        ("accounts", "101")}
    assert entry_partitions({"Topic": "SalesInvoices", "Division": "102", "Action": "Update"}) \
        == {("sales_invoices", "102"), ("sales_invoice_lines", "102"), ("receivables", "102")}
    assert entry_partitions({"Topic": "Contacts", "Division": 103, "Action": "Delete"}) == {
        ("contacts", "103"), ("deletions", "103")}
    assert entry_partitions({"Topic": "Items", "Division": 101, "Action": "Update"}) == set()
    assert SyncScope().covers("anything", 1) and SyncScope.from_entries([]).empty


def test_a_pending_webhooks_run_reads_only_the_announced_partitions_and_keeps_the_rest(
    webhooked, run_tap
):
    sandbox, inbox, config = webhooked
    first = run_tap(config)  # scope all: the full first sync, every bookmark
    assert sandbox.webhooks.wait_idle(10) and inbox.pending() == []
    before = partition_states(first.state)

    account = sandbox.rows("Accounts", 102)[0]
    sandbox.update("Accounts", account["ID"], {"Name": "Announced BV"})
    receivable = next(r for r in sandbox.rows("Receivables", 103) if not r["IsFullyPaid"])
    sandbox.pay_receivable(receivable["ID"])
    contact = sandbox.rows("Contacts", 101)[0]
    sandbox.delete("Contacts", contact["ID"])
    assert sandbox.webhooks.wait_idle(10)
    assert {(e["Topic"], e["Division"]) for e in inbox.pending()} == {
        ("Accounts", 102), ("SalesInvoices", 103), ("Contacts", 101)}
    # A change no webhook announced (no topic for cost centers): for the schedule to find.
    center = sandbox.rows("Costcenters", 101)[0]
    sandbox.update("Costcenters", center["ID"], {"Description": "Unannounced"})

    sandbox.reset_calls()
    run = run_tap({**config, "sync_scope": "pending_webhooks"}, state=first.state)

    assert [r["Name"] for r in run.records("accounts")] == ["Announced BV"]
    assert {r["ID"]: r["IsFullyPaid"] for r in run.records("receivables")}.get(
        receivable["ID"]) is True
    assert contact["ID"] in {r["EntityKey"] for r in run.records("deletions")}
    assert run.records("cost_centers") == [] and run.records("contacts") == []
    assert {r["Division"] for s in ("accounts", "receivables", "deletions", "sales_invoices")
            for r in run.records(s)} <= {101, 102, 103}
    calls = data_calls(sandbox)
    # system/Divisions, accounts 102, the invoice feed and receivables of 103, contacts and
    # deletions of 101: 6 calls, where the whole run makes 19.
    assert sum(calls.values()) == 6, calls
    after = partition_states(run.state)
    read = {("accounts", 102), ("sales_invoices", 103), ("sales_invoice_lines", 103),
            ("receivables", 103), ("contacts", 101), ("deletions", 101)}
    assert {key: after[key] for key in before if key not in read} == {
        key: value for key, value in before.items() if key not in read}
    assert after[("accounts", 102)]["replication_key_value"] > before[("accounts", 102)][
        "replication_key_value"]
    assert inbox.pending() == []  # covered, so cleared

    # The schedule's run (scope all) still finds what no webhook announced.
    full = run_tap(config, state=run.state)
    assert "Unannounced" in {r["Description"] for r in full.records("cost_centers")}
    assert full.records("accounts") == []  # already read by the webhook run: not twice


def test_with_an_empty_inbox_a_pending_webhooks_run_calls_nothing_and_exits_0(
    webhooked, run_tap_process, tmp_path
):
    sandbox, inbox, config = webhooked
    assert inbox.pending() == []
    sandbox.reset_calls()
    config_path = write_json(tmp_path / "config.json", {**config, "sync_scope": "pending_webhooks"})
    run = run_tap_process(config_path, write_json(tmp_path / "state.json", {"bookmarks": {}}))
    assert run.returncode == 0, run.logs[-2000:]
    assert run.messages == [] and data_calls(sandbox) == {}
    assert "webhook inbox is empty" in run.logs


def test_entries_of_partitions_the_run_did_not_read_stay_in_the_inbox(
    exact_sandbox, config_for, run_tap, tmp_path
):
    inbox = WebhookInbox(tmp_path / "inbox.sqlite")
    inbox.add({"Topic": "Accounts", "Division": 101, "Action": "Update", "Key": "a"})
    inbox.add({"Topic": "Contacts", "Division": 101, "Action": "Update", "Key": "c"})
    config = config_for(exact_sandbox, divisions=[101], webhook_inbox_url=inbox.url,
                        sync_scope="pending_webhooks")
    run_tap(config, select=["accounts"])  # contacts deselected: its entry is not covered
    assert [e["Key"] for e in inbox.pending()] == ["c"]
