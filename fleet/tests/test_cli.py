"""`exactmc-tenants` as an admin runs it: add (secrets on stdin, authorization), list, pause,
resume, run refused while paused, remove."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from exactmc_fleet.cli import main
from exactmc_fleet.runner import tenant_sys_dir
from fleet_sandbox import sandbox_settings
from secret_store import SecretStore

CLI = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exactmc-tenants"


def test_add_list_pause_resume_remove(
    fleet_project: Path, fleet_env: dict[str, str], exact_sandbox_factory: Any,
    mailchimp_sandbox_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exact = exact_sandbox_factory(accounts_per_division=5, seed=41)
    mailchimp = mailchimp_sandbox_factory()
    env = {**fleet_env, "TENANTS_REGISTRY_URL": f"sqlite:///{tmp_path / 'tenants.sqlite'}",
           "MELTANO_PROJECT_ROOT": str(fleet_project)}
    settings = [f"--set={k}={v}" for k, v in sandbox_settings(exact, mailchimp).items()]
    # The console script, secrets on stdin (never in argv).
    added = subprocess.run(
        [str(CLI), "add", "acme", "--client-id", exact.client_id, "--region", "nl",
         "--divisions", "101,102", "--list-id", mailchimp.list_id, "--schedule", "*/30 * * * *",
         *settings, "--client-secret-stdin", "--mailchimp-key-stdin", "--fetch"],
        input=f"{exact.client_secret}\n{mailchimp.api_key}\n", env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "Authorized" in added.stdout

    # The secrets in the tenant's namespace of the project's store, the tokens authorized.
    store = SecretStore(fleet_project / ".secrets", env["SECRET_STORE_KEY"], tenant="acme")
    credentials = store.read(f"exactonline-{exact.client_id}-credentials")
    assert credentials["client_secret"] == exact.client_secret
    assert store.read("mailchimp") == {"api_key": mailchimp.api_key}
    assert store.read(f"exactonline-{exact.client_id}")  # the tokens
    outside = SecretStore(fleet_project / ".secrets", env["SECRET_STORE_KEY"], tenant=None)
    assert outside.read("mailchimp") is None

    # The rest in process (the same code; no Python start-up each).
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def tenants(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = tenants("list", "--format", "json")
    assert json.loads(out) == [{
        "name": "acme", "region": "nl", "divisions": [101, 102], "audience": mailchimp.list_id,
        "store": None, "schedule": "*/30 * * * *", "paused": False, "last_run": None}]
    code, _, err = tenants("add", "acme", "--client-id", "x", "--no-authorize")
    assert code == 2 and "already exists" in err
    monkeypatch.delenv("SECRET_STORE_KEY")
    code, _, err = tenants("add", "initech", "--client-id", "x", "--client-secret-stdin")
    assert code == 2 and "SECRET_STORE_KEY is not set" in err
    assert [t["name"] for t in json.loads(tenants("list", "--format", "json")[1])] == ["acme"]
    monkeypatch.setenv("SECRET_STORE_KEY", env["SECRET_STORE_KEY"])

    assert tenants("set", "acme", "--schedule", "0 * * * *", "--divisions", "",
                   "--set", "TARGET_MAILCHIMP_BATCH_SIZE=50",
                   "--unset", "TAP_EXACTONLINE_BASE_URL")[0] == 0
    changed = json.loads(tenants("list", "--format", "json")[1])[0]
    assert changed["schedule"] == "0 * * * *" and changed["divisions"] == "all"
    code, _, err = tenants("set", "acme", "--set", "TARGET_MAILCHIMP_API_KEY=k")
    assert code == 2 and "looks like a secret" in err
    code, _, err = tenants("set", "acme", "--schedule", "never")
    assert code == 2 and "cron" in err
    assert tenants("set", "acme", "--set", f"TAP_EXACTONLINE_BASE_URL={exact.base_url('nl')}",
                   "--divisions", "101,102")[0] == 0

    assert tenants("pause", "acme")[0] == 0
    code, _, err = tenants("run", "acme")
    assert code == 2 and "paused" in err
    assert " yes " in tenants("list")[1].splitlines()[1]
    assert tenants("resume", "acme")[0] == 0
    assert " no " in tenants("list")[1].splitlines()[1]
    # A plugin command as the tenant: its tokens (in its namespace), its divisions.
    checked = subprocess.run(
        [str(CLI), "invoke", "acme", "tap-exactonline:check", "--format", "json"], env=env,
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["divisions"] == [101, 102]

    code, _, err = tenants("remove", "acme")
    assert code == 2 and "--yes" in err
    assert tenant_sys_dir(fleet_project, "acme").is_dir()
    code, out, err = tenants("remove", "acme", "--yes")
    assert code == 0, out + err
    assert store.read("mailchimp") is None
    assert store.read(f"exactonline-{exact.client_id}") is None
    assert not tenant_sys_dir(fleet_project, "acme").exists()
    assert (fleet_project / ".meltano" / "extractors").is_dir()  # the links only were removed
    assert json.loads(tenants("list", "--format", "json")[1]) == []
    assert tenants("run", "acme")[0] == 2
