"""Subscription management against the Exact sandbox: subscribe (idempotent), list, remove."""

from __future__ import annotations

import json
import threading

import pytest
from tap_exactonline.webhook_server import WebhookServer
from tap_exactonline.webhooks import WebhookInbox, default_callback, main

SECRET = "webhook-secret-for-tests"


@pytest.fixture
def callback(tmp_path):
    """A real receiver (answers Exact's validation POST), so subscriptions are accepted."""
    server = WebhookServer("127.0.0.1", 0, SECRET, WebhookInbox(tmp_path / "inbox.sqlite"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}/exact"
    server.close()


@pytest.fixture
def sandbox(exact_sandbox_factory):
    return exact_sandbox_factory(accounts_per_division=3, webhook_secret=SECRET,
                                 webhook_validation_delay=0)


@pytest.fixture
def config_file(sandbox, config_for, tmp_path, callback):
    config = config_for(sandbox, all_divisions=True, webhook_callback_url=callback)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def _held(sandbox):
    return sorted((s["Division"], s["Topic"], s["CallbackURL"])
                  for s in sandbox.webhooks.subscriptions())


def test_all_topics_in_every_division_once_however_often_it_runs(
        sandbox, config_file, callback, capsys):
    assert main(["subscribe", "--config", config_file, "--all-topics"]) == 0
    first = capsys.readouterr().out
    expected = sorted((d, t, callback) for d in (101, 102, 103)
                      for t in ("Accounts", "Contacts", "SalesInvoices"))
    assert _held(sandbox) == expected  # nl company: divisions 101-103
    assert first.count("Subscribed:") == 9

    assert main(["subscribe", "--config", config_file, "--all-topics"]) == 0
    assert capsys.readouterr().out.count("Kept:") == 9
    assert _held(sandbox) == expected  # nothing doubled: each change is delivered once

    # A data change now reaches the callback exactly once.
    account = sandbox.rows("Accounts", 102)[0]
    sandbox.update("Accounts", account["ID"], {"Name": "Once B.V."})
    deliveries = [d for d in sandbox.webhook_deliveries() if d["kind"] == "delivery"]
    assert [(d["content"]["Division"], d["content"]["Key"]) for d in deliveries] == [
        (102, account["ID"])]


def test_list_shows_each_division_and_remove_deletes_only_what_was_named(
        sandbox, config_file, callback, capsys):
    assert main(["subscribe", "--config", config_file, "--all-topics", "--division", "101"]) == 0
    assert main(["subscribe", "--config", config_file, "--topic", "Accounts",
                 "--division", "103"]) == 0
    capsys.readouterr()

    assert main(["list", "--config", config_file]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert sorted((int(d), t) for d, t, _url, _id in lines) == [
        (101, "Accounts"), (101, "Contacts"), (101, "SalesInvoices"), (103, "Accounts")]

    assert main(["remove", "--config", config_file, "--topic", "Contacts"]) == 0
    assert [(d, t) for d, t, _ in _held(sandbox)] == [
        (101, "Accounts"), (101, "SalesInvoices"), (103, "Accounts")]

    one = next(s for s in sandbox.webhooks.subscriptions() if s["Division"] == 103)
    assert main(["remove", "--config", config_file, "--id", one["ID"]]) == 0
    assert [(d, t) for d, t, _ in _held(sandbox)] == [(101, "Accounts"), (101, "SalesInvoices")]

    assert main(["remove", "--config", config_file, "--callback", callback]) == 0
    assert _held(sandbox) == []


def test_remove_without_a_filter_removes_nothing(sandbox, config_file, capsys):
    assert main(["subscribe", "--config", config_file, "--all-topics", "--division", "101"]) == 0
    assert main(["remove", "--config", config_file]) == 1
    assert "name what to remove" in capsys.readouterr().err
    assert len(_held(sandbox)) == 3


def test_subscribe_without_a_callback_is_refused(sandbox, config_for, tmp_path, capsys):
    path = tmp_path / "bare.json"
    path.write_text(json.dumps(config_for(sandbox, divisions=[101])))
    assert main(["subscribe", "--config", str(path), "--all-topics"]) == 1
    assert "callback" in capsys.readouterr().err
    assert _held(sandbox) == []


def test_a_fleet_tenant_subscribes_its_own_route_of_the_base_url(
        sandbox, config_for, tmp_path, callback, monkeypatch, capsys):
    """`webhook_base_url` + EXACTMC_TENANT (as `exactmc-tenants` invokes commands): the fleet's
    one service, route `/exact/<tenant>`; without a tenant `<base>/exact`."""
    base = callback.removesuffix("/exact") + "/"
    monkeypatch.setenv("EXACTMC_TENANT", "acme")  # the tenant's tokens are its own, too
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(config_for(sandbox, divisions=[101], webhook_base_url=base)))
    assert main(["subscribe", "--config", str(path), "--topic", "Accounts"]) == 0
    assert _held(sandbox) == [(101, "Accounts", callback + "/acme")]
    monkeypatch.delenv("EXACTMC_TENANT")
    assert default_callback({"webhook_base_url": base}) == callback
    assert default_callback({"webhook_base_url": base, "webhook_callback_url": "x"}) == "x"
