"""Issue 7 items 8 and 10 in the tap: secrets from the store (key from the environment, never a
config file), numbers as text, one run per company at a time, one token entry per company."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from secret_store import SecretStore, generate_key

BIN = Path(sys.executable).parent
SECRETS = ("client_secret", "refresh_token", "token_store_key")


def set_credential(config_path: Path, field: str, value: str, key: str) -> str:
    result = subprocess.run(
        [str(BIN / "tap-exactonline-set-credential"), field, "--config", str(config_path)],
        input=value + "\n", capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "SECRET_STORE_KEY": key},
    )
    assert result.returncode == 0, result.stderr
    assert value not in result.stdout + result.stderr
    return result.stdout


def records(stdout: str, stream: str) -> list[dict]:
    return [m for m in map(json.loads, (line for line in stdout.splitlines()
                                        if line.startswith("{")))
            if m.get("type") == "RECORD" and m.get("stream") == stream]


def test_secrets_come_from_the_store_and_the_key_from_the_environment(
    exact_sandbox, config_for, tmp_path: Path, monkeypatch
) -> None:
    full = config_for(exact_sandbox, divisions=[101])
    key = full["token_store_key"]
    # What a Meltano user's config file holds now: no secret, numbers possibly as text.
    config = {k: v for k, v in full.items() if k not in SECRETS}
    config["retry_initial_wait"] = "0.05"
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    out = set_credential(config_path, "client_secret", full["client_secret"], key)
    assert f"exactonline-{exact_sandbox.client_id}-credentials" in out
    set_credential(config_path, "refresh_token", full["refresh_token"], key)

    run = subprocess.run(
        [str(BIN / "tap-exactonline"), "--config", str(config_path)], capture_output=True,
        text=True, timeout=120, check=False, env={**os.environ, "SECRET_STORE_KEY": key},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(records(run.stdout, "accounts")) == len(exact_sandbox.rows("Accounts", 101))
    for secret in (full["client_secret"], full["refresh_token"], key):
        assert secret not in run.stdout + run.stderr
        assert secret not in config_path.read_text()

    # The webhook receiver's secret comes from the store as well.
    set_credential(config_path, "webhook_secret", "hook-secret-123456", key)
    from tap_exactonline.authorize import load_config

    with monkeypatch.context() as patch:
        patch.setenv("SECRET_STORE_KEY", key)
        assert load_config([str(config_path)], required=())["webhook_secret"] == (
            "hook-secret-123456")

    # Without the key the tap says what is missing, and shows no secret.
    run = subprocess.run(
        [str(BIN / "tap-exactonline"), "--config", str(config_path)], capture_output=True,
        text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k != "SECRET_STORE_KEY"},
    )
    assert run.returncode != 0 and "client_secret" in run.stderr


def test_the_same_company_twice_at_once_runs_once(
    exact_sandbox, config_for, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config_for(exact_sandbox, divisions=[101])))
    # Held until the second run has ended (released below), however slow its start.
    hold = exact_sandbox.fault_plan.add(path="CRM/Accounts", kind="slow", delay=50, count=1)
    tap = [str(BIN / "tap-exactonline"), "--config", str(config_path)]
    first = subprocess.Popen(tap, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the first run is in its slowed read (it holds the lock) rather than a fixed
    # 1.5 s, which a busy machine may need just to start it (the second would then win).
    # "CRM/Accounts": the sync and bulk reads (a lowercase "crm/" matched none of them).
    deadline = time.monotonic() + 60
    while exact_sandbox.fault_plan.list():
        assert first.poll() is None and time.monotonic() < deadline, first.stderr
        time.sleep(0.02)
    try:
        second = subprocess.run(tap, capture_output=True, text=True, timeout=60, check=False)
    finally:
        hold.release()
    out, err = first.communicate(timeout=120)

    assert first.returncode == 0, err[-2000:]
    assert second.returncode != 0
    assert "in progress on this machine" in second.stderr
    assert not records(second.stdout, "accounts")  # it read nothing
    assert len(records(out, "accounts")) == len(exact_sandbox.rows("Accounts", 101))


def test_each_company_has_its_own_token_entry(
    exact_sandbox, exact_sandbox_factory, config_for, run_tap, tmp_path: Path
) -> None:
    # Two companies authorized separately, one store, one app (same client id).
    other = exact_sandbox_factory(client_id=exact_sandbox.client_id,
                                  client_secret=exact_sandbox.client_secret)
    key = generate_key()
    for name, sandbox in (("acme", exact_sandbox), ("globex", other)):
        config = config_for(sandbox, divisions=[101], token_store_key=key,
                            token_store_name=f"exactonline-{name}")
        run = run_tap(config)
        assert len(run.records("accounts")) == len(sandbox.rows("Accounts", 101))
    store = SecretStore(tmp_path / "store", key)
    acme, globex = store.read("exactonline-acme"), store.read("exactonline-globex")
    assert acme and globex and acme["refresh_token"] != globex["refresh_token"]
    assert store.read(f"exactonline-{exact_sandbox.client_id}") is None


def test_without_a_store_key_the_tap_says_where_to_put_it(
    exact_sandbox, config_for, tmp_path: Path
) -> None:
    config = {k: v for k, v in config_for(exact_sandbox, divisions=[101]).items()
              if k != "token_store_key"}  # a plain-Singer config with its secrets, but no key
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    run = subprocess.run(
        [str(BIN / "tap-exactonline"), "--config", str(config_path)], capture_output=True,
        text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k != "SECRET_STORE_KEY"},
    )
    assert run.returncode != 0 and "SECRET_STORE_KEY" in run.stderr
    assert config["client_secret"] not in run.stderr
