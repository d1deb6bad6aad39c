"""Exact webhook subscriptions through Meltano: webhooks-subscribe, -list and -remove."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from e2e_pipeline import make_pipeline
from tap_exactonline.webhook_server import WebhookServer
from tap_exactonline.webhooks import WebhookInbox

SECRET = "webhook-secret-e2e"


@pytest.fixture
def callback(tmp_path: Path):
    """A receiver that answers Exact's validation POST (Exact refuses a subscription without)."""
    server = WebhookServer("127.0.0.1", 0, SECRET, WebhookInbox(tmp_path / "recv-inbox.sqlite"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}/exact"
    server.close()


def test_meltano_commands_subscribe_every_division_once_list_and_remove(
    meltano_plugins: None, exact_sandbox_factory: Any, mailchimp_sandbox_factory: Any,
    tmp_path: Path, callback: str,
) -> None:
    exact = exact_sandbox_factory(accounts_per_division=3, webhook_secret=SECRET,
                                  webhook_validation_delay=0)
    pipeline = make_pipeline(exact, mailchimp_sandbox_factory(), tmp_path / "pipeline")
    pipeline.env["TAP_EXACTONLINE_WEBHOOK_CALLBACK_URL"] = callback

    def held() -> list[tuple[int, str]]:
        return sorted((s["Division"], s["Topic"]) for s in exact.webhooks.subscriptions())

    every = [(d, t) for d in (101, 102, 103) for t in ("Accounts", "Contacts", "SalesInvoices")]
    pipeline.invoke("tap-exactonline:webhooks-subscribe")
    pipeline.invoke("tap-exactonline:webhooks-subscribe")  # again: nothing doubled
    assert held() == every
    assert {s["CallbackURL"] for s in exact.webhooks.subscriptions()} == {callback}

    listed = pipeline.invoke("tap-exactonline:webhooks-list").stdout
    assert sorted((int(line.split("\t")[0]), line.split("\t")[1])
                  for line in listed.splitlines() if "\t" in line) == every

    pipeline.invoke("tap-exactonline:webhooks-remove", "--topic", "Contacts")
    assert held() == [(d, t) for d, t in every if t != "Contacts"]
