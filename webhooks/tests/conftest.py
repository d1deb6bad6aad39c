"""A running service on a loopback port, with its secrets in a fresh encrypted store."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from exactmc_webhooks.callback_secrets import mailchimp_secret
from exactmc_webhooks.service import WebhookService
from exactmc_webhooks.settings import load_config
from secret_store import SecretStore, generate_key
from tap_exactonline.webhooks import WebhookInbox

RECORDER = Path(__file__).with_name("record_run.py")
EXACT_SECRET = "exact-webhook-secret-for-service-tests"
CLIENT_ID = "service-test-app"

logging.getLogger("werkzeug").setLevel(logging.ERROR)


def recorder_command(path: Path, sleep: float = 0.0, fail_first: int = 0,
                     gate: Path | None = None) -> str:
    return f"{sys.executable} {RECORDER} {path} {sleep} {fail_first}" + (
        f" {gate}" if gate else "")


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@dataclass
class Running:
    service: WebhookService
    config: dict[str, Any]
    exact_runs: Path
    mailchimp_runs: Path
    service_config_path: Path
    exact_secret: str = EXACT_SECRET

    @staticmethod
    def runs(path: Path) -> list[str]:
        """The lines the trigger command wrote: `start`/`end` per run."""
        return path.read_text().splitlines() if path.exists() else []

    def exact_log(self) -> list[str]:
        return self.runs(self.exact_runs)

    def mailchimp_log(self) -> list[str]:
        return self.runs(self.mailchimp_runs)

    @staticmethod
    def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
        return wait_for(check, timeout)

    @property
    def exact_url(self) -> str:
        return f"{self.service.url}/exact"

    @property
    def mailchimp_url(self) -> str:
        return f"{self.service.url}/mailchimp/{self.service.mailchimp_secret}"

    def exact_inbox(self) -> list[dict[str, Any]]:
        return WebhookInbox(self.config["inbox_url"]).pending()

    def mailchimp_inbox(self) -> list[dict[str, Any]]:
        return self.service.mailchimp_inbox.entries()


@pytest.fixture
def store_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = generate_key()
    monkeypatch.setenv("SECRET_STORE_KEY", key)  # as Meltano passes it
    return key


@pytest.fixture
def make_service(tmp_path: Path, store_key: str) -> Iterator[Callable[..., Running]]:
    """`make_service(exact_sleep=0, exact_fail_first=0, exact_gate=None, **settings)`: a
    served service (`exact_gate`: its Exact runs last until that file exists)."""
    started: list[WebhookService] = []

    def make(exact_sleep: float = 0.0, exact_fail_first: int = 0,
             exact_gate: Path | None = None, **settings: Any) -> Running:
        store_dir = tmp_path / "secrets"
        SecretStore(store_dir, store_key).update(f"exactonline-{CLIENT_ID}-credentials",
                                                 webhook_secret=EXACT_SECRET)
        exact_runs, mailchimp_runs = tmp_path / "exact-runs", tmp_path / "mailchimp-runs"
        values = {
            "client_id": CLIENT_ID,
            "secret_store_path": str(store_dir),
            "inbox_url": f"sqlite:///{tmp_path / 'inbox.sqlite'}",
            "trigger_command": recorder_command(exact_runs, exact_sleep, exact_fail_first,
                                                exact_gate),
            "mailchimp_trigger_command": recorder_command(mailchimp_runs),
            "debounce_seconds": 0.5,
            "webhook_client_timeout": 3,
            **settings,
        }
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(values))
        config = load_config(str(config_path))
        mailchimp_secret(config, create=True)
        service = WebhookService(config, "127.0.0.1", 0)
        service.start()
        started.append(service)
        return Running(service, config, exact_runs, mailchimp_runs, config_path)

    yield make
    for service in started:
        service.close()
