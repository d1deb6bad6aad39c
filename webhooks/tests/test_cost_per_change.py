"""What a change costs in Exact calls: an incremental run of the job vs a fetch by key.

Measured with the Exact sandbox's call counter (README, "Why an incremental run"). A sync-feed
poll costs about one call per stream and division whatever the number of changes; a fetch by
key costs one call per changed key, on top of the run that must still move the bookmarks.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json

import requests
from secret_store import generate_key
from tap_exactonline.tap import TapExactOnline

DIVISIONS = [101, 102, 103]


def run_tap(config: dict, state: dict, select: list[str] | None = None) -> dict:
    """One tap run in this process (real HTTP); returns its last state."""
    catalog = None
    if select is not None:
        catalog = TapExactOnline(config=config, validate_config=False).catalog_dict
        for entry in catalog["streams"]:
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == []:
                    meta["metadata"]["selected"] = entry["tap_stream_id"] in select
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        TapExactOnline(config=config, state=copy.deepcopy(state), catalog=catalog).sync_all()
    states = [json.loads(line)["value"] for line in out.getvalue().splitlines()
              if line.startswith('{"type":"STATE"') or '"type": "STATE"' in line]
    return states[-1] if states else state


def data_calls(sandbox) -> int:
    """API calls that count against the division's rate limit (token calls excluded)."""
    return sum(n for endpoint, n in sandbox.calls()["by_endpoint"].items()
               if "oauth2" not in endpoint)


def test_an_incremental_run_costs_the_same_for_1_or_25_changes_fetch_by_key_grows(
    exact_sandbox_factory, tmp_path
):
    sandbox = exact_sandbox_factory(accounts_per_division=30)
    config = {"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
              "refresh_token": sandbox.issue_refresh_token("nl"),
              "base_url": sandbox.base_url("nl"), "token_store_path": str(tmp_path / "s"),
              "token_store_key": generate_key(), "divisions": DIVISIONS,
              "retry_initial_wait": 0.05}
    state = run_tap(config, {})  # the first full sync; bookmarks from here on
    assert state.get("bookmarks")
    accounts = sandbox.rows("Accounts", 101)

    cost = {}
    for changes in (1, 25):
        for account in accounts[:changes]:
            sandbox.update("Accounts", account["ID"], {"Name": f"{changes} {account['ID'][:6]}"})
        sandbox.reset_calls()
        state = run_tap(config, state)
        cost[changes] = data_calls(sandbox)

    # Fetch by key: one GET per changed key (the tap's own authenticator, real HTTP).
    tap = TapExactOnline(config=config, setup_mapper=False)
    sandbox.reset_calls()
    for account in accounts[:25]:
        answer = requests.get(f"{tap.base_url}/api/v1/101/crm/Accounts(guid'{account['ID']}')",
                              auth=tap.authenticator, headers={"Accept": "application/json"},
                              timeout=10)
        assert answer.ok
    by_key = data_calls(sandbox)

    # The narrowest incremental run: the affected stream and division only.
    narrow = {**config, "divisions": [101]}
    sandbox.update("Accounts", accounts[0]["ID"], {"Name": "narrow"})
    sandbox.reset_calls()
    run_tap(narrow, state, select=["accounts"])
    narrow_cost = data_calls(sandbox)

    print(f"\nExact calls: whole-job incremental run {cost} (changes → calls), "
          f"fetch by key of 25 changes {by_key}, one stream × one division {narrow_cost}")
    assert cost[25] == cost[1]  # independent of the number of changes
    assert by_key == 25         # one per changed key, before any run
    assert narrow_cost <= 2
    # One call per feed and division (6 × 3) and one for the divisions: 19 in the sandbox.
    assert cost[1] <= 6 * len(DIVISIONS) + 2


def test_a_webhook_triggered_run_costs_the_affected_partitions_only(
    exact_sandbox_factory, tmp_path
):
    """sync_scope pending_webhooks (the service's default trigger): real deliveries, real calls."""
    import threading

    from tap_exactonline.subscriptions import Subscriptions
    from tap_exactonline.webhook_server import WebhookServer
    from tap_exactonline.webhooks import WebhookInbox

    secret = "cost-test-webhook-secret"
    sandbox = exact_sandbox_factory(accounts_per_division=30, webhook_secret=secret)
    inbox = WebhookInbox(tmp_path / "inbox.sqlite")
    server = WebhookServer("127.0.0.1", 0, secret, inbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = {"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
              "refresh_token": sandbox.issue_refresh_token("nl"),
              "base_url": sandbox.base_url("nl"), "token_store_path": str(tmp_path / "s"),
              "token_store_key": generate_key(), "divisions": DIVISIONS,
              "retry_initial_wait": 0.05, "webhook_inbox_url": inbox.url}
    try:
        list(Subscriptions(config).subscribe(DIVISIONS, ["Accounts", "Contacts", "SalesInvoices"],
                                             f"http://127.0.0.1:{server.port}/exact"))
        state = run_tap(config, {})  # the schedule's full first sync
        assert sandbox.webhooks.wait_idle(10) and inbox.pending() == []
        scoped = {**config, "sync_scope": "pending_webhooks"}
        accounts = sandbox.rows("Accounts", 101)
        cost = {}
        for changes in (1, 25):
            for account in accounts[:changes]:
                name = f"w{changes} {account['ID'][:6]}"
                sandbox.update("Accounts", account["ID"], {"Name": name})
            assert sandbox.webhooks.wait_idle(10) and len(inbox.pending()) == changes
            sandbox.reset_calls()
            state = run_tap(scoped, state)
            cost[changes] = data_calls(sandbox)
            assert inbox.pending() == []  # covered, cleared
        # A payment: the invoice feed (headers and lines, one read) and receivables.
        receivable = next(r for r in sandbox.rows("Receivables", 101) if not r["IsFullyPaid"])
        sandbox.pay_receivable(receivable["ID"])
        assert sandbox.webhooks.wait_idle(10)
        sandbox.reset_calls()
        state = run_tap(scoped, state)
        payment = data_calls(sandbox)
        sandbox.reset_calls()
        run_tap(scoped, state)  # nothing pending
        idle = data_calls(sandbox)
    finally:
        server.close()

    print(f"\nExact calls, webhook-triggered run (sync_scope pending_webhooks): {cost} "
          f"(changes → calls), a payment {payment}, nothing pending {idle}")
    assert cost == {1: 2, 25: 2}  # system/Divisions + the accounts feed of division 101
    assert payment == 3           # system/Divisions + invoice feed + receivables
    assert idle == 0
