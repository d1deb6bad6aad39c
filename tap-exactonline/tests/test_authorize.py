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
    assert "client_secret" in done.stderr and "token_store_path" in done.stderr
