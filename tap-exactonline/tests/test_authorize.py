"""`tap-exactonline-authorize --fetch` against the sandbox (which auto-approves)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tap_exactonline.token_store import TokenStore

AUTHORIZE_EXE = str(Path(sys.executable).with_name("tap-exactonline-authorize"))


def test_authorize_stores_tokens_the_tap_then_uses(exact_sandbox, config_for, run_tap,
                                                   tmp_path: Path):
    config = config_for(exact_sandbox, divisions=[101],
                        redirect_uri="http://127.0.0.1:0/callback")
    del config["refresh_token"]  # no bootstrap: the authorize flow is the only source
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))

    done = subprocess.run([AUTHORIZE_EXE, "--config", str(config_path), "--fetch"],
                          capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert "Authorized" in done.stdout and "oauth2/auth?" in done.stdout
    stored = TokenStore(config["token_store_path"], config["token_store_key"],
                        config["client_id"]).read()
    assert stored.refresh_token and stored.access_token
    for secret in (stored.refresh_token, stored.access_token, config["client_secret"]):
        assert secret not in done.stdout + done.stderr

    run = run_tap(config, select=["accounts"])
    assert len(run.records("accounts")) == len(exact_sandbox.rows("Accounts", 101))
    # The stored access token was reused: the only token call was the code exchange.
    assert exact_sandbox.calls()["by_endpoint"]["POST oauth2/token"] == 1


def test_authorize_reads_env_settings_and_reports_missing_ones(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "TAP_EXACTONLINE_CLIENT_ID": "abc"}
    done = subprocess.run([AUTHORIZE_EXE, "--config", "ENV", "--no-browser"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    # No token_store_path needed: it defaults to EXACTMC_DATABASE_URL, else the project's .secrets.
    assert "client_secret" in done.stderr and "token_store_key" in done.stderr


def test_a_fleet_tenant_keeps_everything_in_the_fleet_database(
        exact_sandbox, config_for, run_tap, postgres_url, monkeypatch, capsys, tmp_path: Path):
    """As Meltano runs a fleet tenant: no token_store_path, EXACTMC_DATABASE_URL and
    EXACTMC_TENANT in the environment. set-credential, authorize, check and a sync all use the
    database, under the tenant's names; nothing lands in a `.secrets` directory."""
    from secret_store import SecretStore
    from tap_exactonline.check import main as check
    from tap_exactonline.credentials import credentials_name

    config = config_for(exact_sandbox, divisions=[101])
    key = config["token_store_key"]
    env = {"PATH": "/usr/bin:/bin", "SECRET_STORE_KEY": key, "EXACTMC_TENANT": "acme",
           "EXACTMC_DATABASE_URL": postgres_url, "MELTANO_PROJECT_ROOT": str(tmp_path),
           "TAP_EXACTONLINE_CLIENT_ID": config["client_id"],
           "TAP_EXACTONLINE_BASE_URL": config["base_url"],
           "TAP_EXACTONLINE_REDIRECT_URI": "http://127.0.0.1:0/callback"}
    setter = str(Path(sys.executable).with_name("tap-exactonline-set-credential"))
    stored = subprocess.run([setter, "client_secret", "--config", "ENV"], env=env,
                            input=config["client_secret"] + "\n", capture_output=True,
                            text=True, timeout=60, check=False)
    assert stored.returncode == 0, stored.stderr
    assert "postgresql" in stored.stdout and config["client_secret"] not in stored.stdout
    done = subprocess.run([AUTHORIZE_EXE, "--config", "ENV", "--fetch"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert check(["--config", "ENV"]) == 0, capsys.readouterr().out
    del config["token_store_path"], config["refresh_token"], config["client_secret"]
    run = run_tap(config, select=["accounts"])
    assert len(run.records("accounts")) == len(exact_sandbox.rows("Accounts", 101))

    name = "exactonline-" + config["client_id"]
    tenant_store = SecretStore(postgres_url, key, tenant="acme")
    assert tenant_store.read(name)["refresh_token"]
    assert tenant_store.read(credentials_name(config))["client_secret"]
    assert SecretStore(postgres_url, key, tenant=None).read(name) is None  # namespaced
    assert not (tmp_path / ".secrets").exists()
