"""`tap-exactonline-check` against the Exact sandbox: healthy, wrong region, unreachable or
unknown division, old and expired refresh tokens; exit codes and JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tap_exactonline.check import ExactCheck, main
from tap_exactonline.credentials import token_store_name
from tap_exactonline.token_store import TokenStore

DAY = 86400


def _store(config: dict) -> TokenStore:
    return TokenStore(config["token_store_path"], config["token_store_key"],
                      config["client_id"], name=token_store_name(config))


def _problems(report) -> list[str]:
    return [f["message"] for f in report.findings if f["level"] != "ok"]


def test_healthy_check_refreshes_like_a_run_and_keeps_the_token_usable(exact_sandbox, config_for):
    config = config_for(exact_sandbox, all_divisions=True)
    exact_sandbox.reset_calls()
    report = ExactCheck(config).run()
    assert report.status == "ok", report.findings
    assert report.exit_code == 0
    assert report.facts["divisions"] == [101, 102, 103]
    assert report.facts["current_division"] == 101
    # The bootstrap was spent by one token call: its new pair is in the store.
    assert report.facts["token_refreshed"] is True
    assert report.facts["exact_calls"] == 3
    stored = _store(config).read()
    assert stored.refresh_token and stored.refresh_token != config["refresh_token"]
    assert exact_sandbox.calls()["by_endpoint"].get("GET system/Divisions") == 1

    # A second check within the access token's life: no refresh, 2 calls. Then, past it, a
    # check refreshes with the stored (rotated) token: the first check lost nothing.
    second = ExactCheck(config).run()
    assert second.status == "ok" and second.facts["exact_calls"] == 2
    exact_sandbox.advance_clock(700)
    third = ExactCheck({**config, "refresh_token": None}).run()
    assert third.status == "ok", third.findings
    assert third.facts["token_refreshed"] is True


def test_wrong_region_is_an_error_without_any_call(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    assert ExactCheck(config).run().status == "ok"
    exact_sandbox.reset_calls()
    report = ExactCheck({**config, "base_url": exact_sandbox.base_url("be")}).run()
    assert report.exit_code == 2
    [problem] = _problems(report)
    assert "issued by" in problem and "(region nl)" in problem and "(region be)" in problem
    assert "set base_url " + exact_sandbox.base_url("nl") in problem  # base_url overrides region
    report = ExactCheck({**config, "base_url": None, "region": "be"}).run()
    assert "(region nl)" in _problems(report)[0] and "set region nl" in _problems(report)[0]
    assert report.facts["exact_calls"] == 0
    assert exact_sandbox.calls()["total"] == 0


def test_unreachable_and_unknown_divisions(exact_sandbox, config_for):
    config = config_for(exact_sandbox, divisions=[999])
    report = ExactCheck(config).run()
    assert report.status == "error"
    assert any(p.startswith("Division 999 is not reachable") for p in _problems(report))

    report = ExactCheck({**config, "divisions": [101, 998], "refresh_token": None}).run()
    assert report.status == "error"
    [problem] = _problems(report)
    assert problem.startswith("Division(s) [998] are not in this Exact company")
    assert "[101, 102, 103]" in problem


def test_old_refresh_token_warns_and_expired_one_is_an_error(exact_sandbox, config_for,
                                                            tmp_path: Path):
    config = config_for(exact_sandbox)
    assert ExactCheck(config).run().status == "ok"
    store = _store(config)
    record = store.read()
    record.issued_at = time.time() - 26 * DAY
    store.write(record)
    exact_sandbox.advance_clock(700)  # Exact allows the refresh the old age makes due

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, "refresh_token": None}))
    code = main(["--config", str(path), "--format", "json"])
    assert code == 1  # warnings only
    report = ExactCheck({**config, "refresh_token": None}).run()  # renewed by the run above
    assert report.status == "ok"

    record = store.read()
    record.issued_at = time.time() - 26 * DAY
    store.write(record)
    exact_sandbox.advance_clock(700)
    report = ExactCheck({**config, "refresh_token": None}).run()
    assert report.status == "warning"
    [problem] = _problems(report)
    assert problem.startswith("The refresh token is 26 days old and no run has succeeded since")
    assert "re-authorize with `meltano invoke tap-exactonline:authorize`" in problem

    record = store.read()
    record.issued_at = time.time() - 31 * DAY
    store.write(record)
    exact_sandbox.reset_calls()
    report = ExactCheck({**config, "refresh_token": None}).run()
    assert report.exit_code == 2 and exact_sandbox.calls()["total"] == 0
    assert "Exact has expired it" in _problems(report)[0]


def test_json_output_and_missing_secret(exact_sandbox, config_for, tmp_path: Path, capsys):
    config = config_for(exact_sandbox)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["--config", str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["exact_calls"] == 3

    path.write_text(json.dumps({**config, "client_secret": None}))
    assert main(["--config", str(path)]) == 2
    text = capsys.readouterr().out
    assert "ERROR: No client secret in the encrypted store" in text
    assert "set-credential client_secret" in text


def test_config_from_meltano_environment(exact_sandbox, config_for, monkeypatch, capsys):
    """`--config ENV`, as `meltano invoke tap-exactonline:check` runs it: settings from
    TAP_EXACTONLINE_* variables, the client secret from the store, the key from the env."""
    from secret_store import SecretStore
    from tap_exactonline.credentials import credentials_name

    config = config_for(exact_sandbox)
    SecretStore(config["token_store_path"], config["token_store_key"]).write(
        credentials_name(config), {"client_secret": config["client_secret"],
                                   "refresh_token": config["refresh_token"]})
    monkeypatch.setenv("SECRET_STORE_KEY", config["token_store_key"])
    for name in ("client_id", "base_url", "token_store_path"):
        monkeypatch.setenv(f"TAP_EXACTONLINE_{name.upper()}", str(config[name]))
    assert main(["--config", "ENV"]) == 0
    assert "tap-exactonline check: all is well." in capsys.readouterr().out
