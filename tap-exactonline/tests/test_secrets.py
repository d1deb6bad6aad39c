"""No secret (client secret, refresh or access token) in stdout, logs, state or the store file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def _every_token(sandbox) -> set[str]:
    # The sandbox's own record of every token it ever issued (test-only access).
    authority = sandbox.authority
    return set(authority._access) | set(authority._refresh)


def _assert_clean(texts: dict[str, str], secrets: set[str]) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"


def test_no_secret_leaks_anywhere(exact_sandbox_factory, config_for, run_tap_process,
                                  tmp_path: Path, monkeypatch):
    # Short token life and a 1.5 s "minute": the run must refresh (and rotate) midway.
    sandbox = exact_sandbox_factory(accounts_per_division=5, access_token_seconds=2,
                                    refresh_too_early_seconds=1, minutely_limit=2,
                                    minute_seconds=1.5)
    config = config_for(sandbox, divisions=[101])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    monkeypatch.setenv("LOGLEVEL", "DEBUG")

    run = run_tap_process(config_path)

    assert run.returncode == 0, run.logs[-2000:]
    assert sandbox.calls()["by_endpoint"]["POST oauth2/token"] >= 2  # it did rotate
    secrets = _every_token(sandbox) | {config["client_secret"], config["token_store_key"]}
    store_files = {p.name: p.read_bytes().decode("latin-1")
                   for p in Path(config["token_store_path"]).iterdir()}
    _assert_clean({"stdout": run.stdout, "logs": run.logs,
                   "state": json.dumps(run.state), **store_files}, secrets)

    # A failing run (dead tokens) explains itself without quoting them either.
    shutil.rmtree(config["token_store_path"])
    config["refresh_token"] = "not-a-valid-token-" + os.urandom(8).hex()
    config_path.write_text(json.dumps(config))
    failed = run_tap_process(config_path)
    assert failed.returncode != 0
    assert "tap-exactonline-authorize" in failed.logs
    _assert_clean({"stdout": failed.stdout, "logs": failed.logs},
                  secrets | {config["refresh_token"]})
