"""A fleet's service: the inboxes in the one PostgreSQL database, a schema per tenant."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
import sqlalchemy as sa
from exactmc_sandbox.exact.webhooks import signed_body
from exactmc_webhooks.mailchimp_inbox import MailchimpInbox
from tap_exactonline.tap import TapExactOnline

SECRET = "exact-webhook-secret-for-service-tests"  # what make_service stores for Exact


def delivery(key: str) -> bytes:
    return signed_body({"Topic": "Contacts", "ClientId": "c", "Division": 102,
                        "Action": "Update", "Key": key, "ExactOnlineEndpoint": "https://x",
                        "EventCreatedOn": "2026-11-27T10:00:00"}, SECRET)


def pending_scope(tmp_path) -> frozenset | None:
    """The partitions a webhook-triggered tap run of the current tenant would read."""
    tap = TapExactOnline(config={
        "client_id": "service-test-app", "client_secret": "unused", "divisions": [101, 102],
        "token_store_path": str(tmp_path / "tokens"), "sync_scope": "pending_webhooks"},
        setup_mapper=False)
    return tap.sync_scope.partitions


def test_a_fleet_service_records_in_postgresql_per_tenant_and_each_tap_reads_its_own(
        make_service, postgres_url, tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EXACTMC_DATABASE_URL", postgres_url)  # the fleet's one database
    monkeypatch.setenv("EXACTMC_TENANT", "acme")
    running = make_service(inbox_url="", trigger_command="", mailchimp_trigger_command="")

    answers = [requests.post(running.exact_url, data=delivery("k1"), timeout=5)
               for _ in range(2)]
    assert [(a.status_code, a.text.strip()) for a in answers] == [
        (200, "recorded"), (200, "already recorded")]
    form = {"type": "cleaned", "fired_at": "2026-11-27 10:00:00", "data[email]": "a@b.nl",
            "data[list_id]": "l1"}
    assert requests.post(running.mailchimp_url, data=urlencode(form).encode(), timeout=5,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}).ok

    # In PostgreSQL, in acme's schema: the service and the jobs may be on different machines.
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        counts = [connection.execute(sa.select(sa.func.count()).select_from(
            sa.table(name, schema="acme__inbox"))).scalar_one()
            for name in ("exact_webhook_inbox", "mailchimp_webhook_inbox")]
    engine.dispose()
    assert counts == [1, 1]
    assert pending_scope(tmp_path) == {("contacts", "102")}

    monkeypatch.setenv("EXACTMC_TENANT", "globex")  # another tenant, same URL
    assert pending_scope(tmp_path) == frozenset()
    assert MailchimpInbox().entries() == []
    answer = requests.post(running.exact_url, data=delivery("k2"), timeout=5)
    assert answer.text.strip() == "recorded"  # the service stays acme's
    monkeypatch.setenv("EXACTMC_TENANT", "acme")
    assert [e["Key"] for e in running.exact_inbox()] == ["k1", "k2"]
    assert [e["email"] for e in MailchimpInbox().entries()] == ["a@b.nl"]
