"""One service for the whole fleet: `/exact/<tenant>` and `/mailchimp/<tenant>/<secret>`.

Tenants registered in the fleet's one database (`EXACTMC_DATABASE_URL`, SQLite and a real
PostgreSQL); each delivery verified with its tenant's secret, recorded in its tenant's inbox,
and turned into a row of the fleet's `run_requests` (what Dagster's sensor starts runs from).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from exactmc_fleet.dagster.requests import RunRequests
from exactmc_fleet.registry import Tenant, TenantRegistry
from exactmc_sandbox.exact.webhooks import signed_body
from exactmc_webhooks import cli
from exactmc_webhooks import tenants as tenants_module
from exactmc_webhooks.service import WebhookService
from exactmc_webhooks.settings import load_config
from secret_store import SecretStore, generate_key
from secret_store.webhook_inbox import InboxDatabase
from tap_exactonline.webhooks import WebhookInbox

SECRETS = {"acme": "acme-exact-webhook-secret", "globex": "globex-exact-webhook-secret",
           "initech": "initech-exact-webhook-secret"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def delivery(tenant_secret: str, key: str) -> bytes:
    return signed_body({"Topic": "Accounts", "ClientId": "c", "Division": 101,
                        "Action": "Update", "Key": key, "ExactOnlineEndpoint": "https://x",
                        "EventCreatedOn": "2026-11-27T10:00:00"}, tenant_secret)


def unsubscribe(email: str) -> bytes:
    return urlencode({"type": "unsubscribe", "fired_at": "2026-11-27 10:00:00",
                      "data[email]": email, "data[list_id]": "l1"}).encode()


@dataclass
class Fleet:
    url: str  # the fleet's one database
    service: WebhookService
    config_path: Path

    def exact(self, tenant: str) -> list[str]:
        return [e["Key"] for e in InboxDatabase(self.url, tenant=tenant).exact_entries()]

    def mailchimp(self, tenant: str) -> list[str]:
        return [e["email"] for e in InboxDatabase(self.url, tenant=tenant).mailchimp_entries()]

    def requests(self) -> list[tuple[str, str]]:
        return sorted((r.tenant, r.job) for r in RunRequests(self.url).pending())


def start_fleet(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    monkeypatch.setenv("EXACTMC_DATABASE_URL", url)
    monkeypatch.delenv("EXACTMC_TENANT", raising=False)
    key = generate_key()
    monkeypatch.setenv("SECRET_STORE_KEY", key)
    registry = TenantRegistry(url)
    for name in SECRETS:
        registry.add(Tenant(name, f"{name}-app", paused=name == "initech"))
        SecretStore(url, key, tenant=name).update(f"exactonline-{name}-app-credentials",
                                                  webhook_secret=SECRETS[name])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"fleet": True, "debounce_seconds": 0.2}))
    service = WebhookService(load_config(str(config_path)), "127.0.0.1", 0)
    service.start()
    assert service.pending_sweep is not None
    service.pending_sweep.join(10)  # nothing pending: the tests' own requests only
    return Fleet(url, service, config_path)


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    running = start_fleet(f"sqlite:///{tmp_path / 'fleet.sqlite'}", tmp_path, monkeypatch)
    yield running
    running.service.close()


def check_each_tenant_gets_its_own(fleet: Fleet) -> None:
    base = fleet.service.url
    for name in ("acme", "globex"):
        answer = requests.post(f"{base}/exact/{name}", data=delivery(SECRETS[name], name),
                               timeout=5)
        assert (answer.status_code, answer.text.strip()) == (200, "recorded")
    assert fleet.exact("acme") == ["acme"]
    assert fleet.exact("globex") == ["globex"]
    assert fleet.requests() == [("acme", "exactonline-to-mailchimp"),
                                ("globex", "exactonline-to-mailchimp")]

    # Signed with globex's secret, sent to acme: refused, nothing recorded, nothing asked.
    forged = requests.post(f"{base}/exact/acme", data=delivery(SECRETS["globex"], "x"),
                           timeout=5)
    assert forged.status_code == 401
    assert fleet.exact("acme") == ["acme"]
    assert fleet.exact("globex") == ["globex"]


def test_each_tenant_delivery_lands_in_its_own_inbox_and_asks_for_its_own_run(fleet):
    check_each_tenant_gets_its_own(fleet)


def test_on_postgresql_too(tmp_path, monkeypatch, postgres_url):
    running = start_fleet(postgres_url, tmp_path, monkeypatch)
    try:
        check_each_tenant_gets_its_own(running)
    finally:
        running.service.close()


def test_an_unknown_tenant_answers_as_a_registered_one_and_records_nothing(fleet):
    # Probing /exact/<name> must not tell which companies the fleet serves: every request
    # gets the answer a registered tenant gives it (a delivery not signed with its secret,
    # the handshake, a GET); nothing is recorded or asked for anyone.
    base = fleet.service.url

    def answers(name: str) -> list[tuple[int, str]]:
        sent = [requests.post(f"{base}/exact/{name}", data=delivery("not-its-secret", name),
                              timeout=5),
                requests.post(f"{base}/exact/{name}", data=b"", timeout=5),
                requests.get(f"{base}/exact/{name}", timeout=5)]
        return [(answer.status_code, answer.text) for answer in sent]

    registered = answers("acme")
    assert [status for status, _ in registered] == [401, 200, 405]
    assert answers("nobody") == registered
    assert fleet.exact("acme") == [] and fleet.exact("nobody") == []
    assert fleet.requests() == []
    # A path that can never name a tenant is an unknown path.
    for path in ("/exact/Bad-Name", "/exact/", "/exact/acme/x"):
        answer = requests.post(base + path, data=delivery(SECRETS["acme"], "k"), timeout=5)
        assert answer.status_code == 404, path


def test_paused_tenant_recorded_without_a_run(fleet):
    base = fleet.service.url

    paused = requests.post(f"{base}/exact/initech", data=delivery(SECRETS["initech"], "p1"),
                           timeout=5)
    assert paused.text.strip() == "recorded"  # the run after resume reads it
    assert fleet.exact("initech") == ["p1"]
    assert fleet.requests() == []
    # A repeat is a no-op; the handshake (empty POST) is answered.
    again = requests.post(f"{base}/exact/initech", data=delivery(SECRETS["initech"], "p1"),
                          timeout=5)
    assert again.text.strip() == "already recorded"
    assert requests.post(f"{base}/exact/acme", data=b"", timeout=5).status_code == 200


def test_mailchimp_url_per_tenant_and_its_deliveries(fleet, monkeypatch, capsys):
    monkeypatch.setenv("EXACTMC_TENANT", "acme")  # as `exactmc-tenants` invokes commands
    assert cli.main(["mailchimp-url", "--config", str(fleet.config_path),
                     "--base", fleet.service.url]) == 0
    url = capsys.readouterr().out.strip()
    monkeypatch.delenv("EXACTMC_TENANT")
    secret = url.rsplit("/", 1)[1]
    assert url == f"{fleet.service.url}/mailchimp/acme/{secret}"

    assert requests.get(url, timeout=5).status_code == 200  # Mailchimp's validation
    answer = requests.post(url, data=unsubscribe("a@acme.nl"), headers=FORM, timeout=5)
    assert answer.text.strip() == "recorded"
    assert fleet.mailchimp("acme") == ["a@acme.nl"]
    assert fleet.mailchimp("globex") == []
    assert fleet.requests() == [("acme", "mailchimp-to-exactonline")]

    # acme's secret under globex's name, and an unknown tenant: 404, nothing recorded.
    for path in (f"/mailchimp/globex/{secret}", f"/mailchimp/nobody/{secret}",
                 "/mailchimp/acme/wrong"):
        refused = requests.post(fleet.service.url + path, data=unsubscribe("b@x.nl"),
                                headers=FORM, timeout=5)
        assert refused.status_code == 404, path
    assert fleet.mailchimp("globex") == []
    assert fleet.mailchimp("acme") == ["a@acme.nl"]


def test_a_removed_or_paused_tenant_is_noticed_without_a_restart(fleet):
    base = fleet.service.url
    registry = TenantRegistry(fleet.url)
    assert requests.post(f"{base}/exact/acme", data=delivery(SECRETS["acme"], "a1"),
                         timeout=5).ok
    RunRequests(fleet.url).done(RunRequests(fleet.url).pending())  # the sensor took it
    registry.set_paused("acme", True)
    registry.remove("globex")
    fleet.service.fleet.forget()  # what the registry's TTL does in time
    assert requests.post(f"{base}/exact/acme", data=delivery(SECRETS["acme"], "a2"),
                         timeout=5).text.strip() == "recorded"
    assert requests.post(f"{base}/exact/globex", data=delivery(SECRETS["globex"], "g1"),
                         timeout=5).status_code == 401  # as for any name not served
    assert fleet.exact("acme") == ["a1", "a2"]
    assert fleet.exact("globex") == []
    assert fleet.requests() == []


def test_without_a_fleet_database_each_tenant_inbox_is_the_file_its_runs_read(
        tmp_path, monkeypatch):
    """No EXACTMC_DATABASE_URL: the tenant's runs (MELTANO_SYS_DIR_ROOT = its own directory)
    find their inbox at its default file, so the service writes exactly there."""
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXACTMC_TENANT", raising=False)
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))
    key = generate_key()
    monkeypatch.setenv("SECRET_STORE_KEY", key)
    registry_url = f"sqlite:///{tmp_path / 'tenants.sqlite'}"
    TenantRegistry(registry_url).add(Tenant("acme", "acme-app"))
    SecretStore(tmp_path / ".secrets", key, tenant="acme").update(
        "exactonline-acme-app-credentials", webhook_secret=SECRETS["acme"])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"fleet": "true", "fleet_registry_url": registry_url}))
    service = WebhookService(load_config(str(config_path)), "127.0.0.1", 0)
    service.start()
    try:
        answer = requests.post(f"{service.url}/exact/acme",
                               data=delivery(SECRETS["acme"], "a1"), timeout=5)
        assert answer.text.strip() == "recorded"
    finally:
        service.close()
    inbox = tmp_path / ".meltano" / "tenants" / "acme" / "webhooks" / "inbox.sqlite"
    assert inbox.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(inbox.parent.parent))  # as a run of acme
    monkeypatch.setenv("EXACTMC_TENANT", "acme")
    assert [e["Key"] for e in WebhookInbox().pending()] == ["a1"]
    assert RunRequests(registry_url).pending()[0].tenant == "acme"


def test_fleet_mode_refuses_one_sqlite_inbox_file_for_every_tenant(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.setenv("SECRET_STORE_KEY", generate_key())
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({
        "fleet": True, "fleet_registry_url": f"sqlite:///{tmp_path / 'tenants.sqlite'}",
        "inbox_url": str(tmp_path / "inbox.sqlite")}))
    assert cli.main(["serve", "--config", str(config_path), "--port", "0"]) == 1
    assert "tenants would share" in capsys.readouterr().err
    with pytest.raises(ValueError, match="true or false"):
        config_path.write_text(json.dumps({"fleet": "maybe"}))
        load_config(str(config_path))


def test_inbox_handles_are_bounded_and_an_evicted_one_closes_its_connections(
        tmp_path, monkeypatch):
    monkeypatch.setattr(tenants_module, "INBOX_CACHE", 1)  # a fleet larger than the cache
    fleet = start_fleet(f"sqlite:///{tmp_path / 'fleet.sqlite'}", tmp_path, monkeypatch)
    try:
        base = fleet.service.url
        sent = [("acme", "a1"), ("globex", "g1"), ("acme", "a2"), ("acme", "a1")]
        answers = [requests.post(f"{base}/exact/{name}", data=delivery(SECRETS[name], key),
                                 timeout=5).text.strip() for name, key in sent]
        assert answers == ["recorded", "recorded", "recorded", "already recorded"]
        assert list(fleet.service.fleet._inboxes._items) == [("exact", "acme")]
        globex = InboxDatabase(fleet.url, tenant="globex").engine  # the engine it pinned
        assert globex.pool.checkedin() == 0  # its connection closed when it was evicted
        acme = InboxDatabase(fleet.url, tenant="acme").engine
        assert acme.pool.checkedin() == 1  # the cached tenant's stays open
        assert fleet.exact("acme") == ["a1", "a2"]
        assert fleet.exact("globex") == ["g1"]
    finally:
        fleet.service.close()


def test_deliveries_pending_at_a_restart_ask_for_their_tenant_run(fleet, tmp_path,
                                                                   monkeypatch):
    base = fleet.service.url
    for name in ("acme", "initech"):  # initech is paused
        assert requests.post(f"{base}/exact/{name}", data=delivery(SECRETS[name], "k"),
                             timeout=5).ok
    fleet.service.close()
    requested = RunRequests(fleet.url)
    requested.done(requested.pending())  # e.g. the request was lost
    again = WebhookService(load_config(str(fleet.config_path)), "127.0.0.1", 0)
    fleet.service = again  # closed by the fixture
    assert wait_for(lambda: fleet.requests() == [("acme", "exactonline-to-mailchimp")])
