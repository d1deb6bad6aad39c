"""The end-to-end tests' view of one pipeline: isolated Meltano state wired to both sandboxes."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
MELTANO = ROOT / ".venv" / "bin" / "meltano"
PIPELINE = ["tap-exactonline", "exact-to-mailchimp", "target-mailchimp"]
STORE_ID = "exact-online"


@dataclass
class Pipeline:
    """One isolated Meltano project state (system db, secrets, stores) wired to the sandboxes."""

    exact: Any
    mailchimp: Any
    workdir: Path
    env: dict[str, str]

    root = ROOT

    @staticmethod
    def command(*args: str) -> list[str]:
        return [str(MELTANO), *args]

    def meltano(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run Meltano in this pipeline's environment; its output is kept in the workdir."""
        result = subprocess.run(
            self.command(*args), cwd=ROOT, env=self.env, input=stdin,
            capture_output=True, text=True, timeout=600, check=False,
        )
        with (self.workdir / "meltano-output.log").open("a") as log:
            log.write(result.stdout + result.stderr)
        if check:
            assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
        return result

    def run(
        self, *args: str, plugins: list[str] = PIPELINE, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.meltano("run", *args, *plugins, check=check)

    def invoke(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.meltano("invoke", *args, stdin=stdin)

    def state(self, state_id: str = "dev:tap-exactonline-to-target-mailchimp") -> str:
        return self.meltano("state", "get", state_id).stdout

    def members(self) -> dict[str, dict[str, Any]]:
        return {m["email_address"]: m for m in self.mailchimp.members()}

    def orders(self) -> dict[str, dict[str, Any]]:
        try:
            return self.mailchimp.store(STORE_ID)["orders"]  # keyed by order id
        except KeyError:  # no store yet
            return {}

    def mailchimp_writes(self) -> int:
        by_endpoint = self.mailchimp.calls()["by_endpoint"]
        return sum(n for label, n in by_endpoint.items() if not label.startswith("GET "))


def make_pipeline(exact: Any, mailchimp: Any, workdir: Path) -> Pipeline:
    """Settings as environment variables (they win over meltano.yml), all state under workdir."""
    store_key = Fernet.generate_key().decode()
    env = {
        **os.environ,
        "MELTANO_ENVIRONMENT": "dev",
        "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_EXACTONLINE_BASE_URL": exact.base_url("nl"),
        "TAP_EXACTONLINE_CLIENT_ID": exact.client_id,
        "TAP_EXACTONLINE_CLIENT_SECRET": exact.client_secret,
        "TAP_EXACTONLINE_REFRESH_TOKEN": exact.issue_refresh_token("nl"),
        "TAP_EXACTONLINE_ALL_DIVISIONS": "true",
        "TAP_EXACTONLINE_TOKEN_STORE_PATH": str(workdir / "secrets"),
        "TAP_EXACTONLINE_TOKEN_STORE_KEY": store_key,
        "TARGET_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TARGET_MAILCHIMP_LOGIN_URL": mailchimp.url,
        "TARGET_MAILCHIMP_API_KEY": mailchimp.api_key,
        "TARGET_MAILCHIMP_LIST_ID": mailchimp.list_id,
        "TARGET_MAILCHIMP_AUDIT_STORE_URL": f"sqlite:///{workdir / 'audit.sqlite'}",
        "TARGET_MAILCHIMP_SECRET_STORE_PATH": str(workdir / "secrets"),
        "TARGET_MAILCHIMP_SECRET_STORE_KEY": store_key,
        "MAPPER_EXACT_MAILCHIMP_LOOKUP_STORE_PATH": str(workdir / "lookup.sqlite"),
        "MAPPER_EXACT_MAILCHIMP_REJECTIONS_PATH": str(workdir / "rejections.jsonl"),
    }
    return Pipeline(exact, mailchimp, workdir, env)
