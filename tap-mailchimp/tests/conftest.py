"""Fixtures of the tap's tests: a Mailchimp sandbox with an audience and a config for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests


class Audience:
    """Drives the sandbox over its HTTP API, as a Mailchimp user or another client would."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.auth = ("test", sandbox.api_key)
        self.lists = f"{sandbox.api_base}/lists/{sandbox.list_id}"

    def subscribe(self, *emails: str) -> None:
        for email in emails:
            answer = self.session.post(f"{self.lists}/members",
                                       json={"email_address": email, "status": "subscribed"})
            assert answer.status_code == 200, answer.text

    def create_tag(self, name: str) -> int:
        answer = self.session.post(f"{self.lists}/segments",
                                   json={"name": name, "static_segment": []})
        assert answer.status_code == 200, answer.text
        return int(answer.json()["id"])

    def rename_tag(self, segment_id: int, name: str) -> None:
        answer = self.session.patch(f"{self.lists}/segments/{segment_id}", json={"name": name})
        assert answer.status_code == 200, answer.text


@pytest.fixture
def audience(mailchimp_sandbox: Any) -> Audience:
    return Audience(mailchimp_sandbox)


@pytest.fixture
def config(mailchimp_sandbox: Any, tmp_path: Path) -> dict[str, Any]:
    return {
        "api_key": mailchimp_sandbox.api_key,
        "base_url": mailchimp_sandbox.api_base,
        "list_id": mailchimp_sandbox.list_id,
        "mailchimp_inbox_url": f"sqlite:///{tmp_path / 'inbox.sqlite'}",
        "retry_backoff_factor": 0.01,
        "retry_max_tries": 4,
    }


@pytest.fixture(autouse=True)
def _own_meltano_sys_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Default stores (target-mailchimp's audit trail read by the tap when no
    forward_audit_store_url is set) resolve under the test's own directory, never the
    developer's project or a fleet database of the environment."""
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXACTMC_TENANT", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "meltano-sys"))
