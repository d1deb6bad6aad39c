"""The OAuth life cycle against the sandbox's token endpoint (real HTTP).

Time: the authenticator takes a clock; `SyncedClock` moves it and the sandbox's clock together,
so 600-second token lifetimes are tested without sleeping.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests
from tap_exactonline.auth import ExactAuthenticator, ExactAuthError, ReauthorizationRequired
from tap_exactonline.token_store import TokenStore


class SyncedClock:
    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.offset = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.sandbox.advance_clock(seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def store_of(config: dict) -> TokenStore:
    return TokenStore(config["token_store_path"], config["token_store_key"], config["client_id"])


def authenticator(config: dict, clock: SyncedClock, **overrides) -> ExactAuthenticator:
    options = {
        "base_url": config["base_url"], "client_id": config["client_id"],
        "client_secret": config["client_secret"], "store": store_of(config),
        "bootstrap_refresh_token": config.get("refresh_token"), "timeout": 5.0,
        "sleep": clock.sleep, "clock": clock,
    }
    options.update(overrides)
    return ExactAuthenticator(**options)


def call_api(config: dict, auth: ExactAuthenticator) -> requests.Response:
    response = requests.get(f"{config['base_url']}/api/v1/current/Me", auth=auth,
                            headers={"Accept": "application/json"}, timeout=5)
    assert response.status_code == 200, response.text
    return response


def token_calls(sandbox) -> int:
    return sandbox.calls()["by_endpoint"].get("POST oauth2/token", 0)


def test_first_run_bootstraps_and_a_second_run_reuses_the_stored_token(
    exact_sandbox, config_for
):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    call_api(config, authenticator(config, clock))

    stored = store_of(config).read()
    assert stored.refresh_token and stored.refresh_token != config["refresh_token"]
    assert stored.access_token and stored.refresh_started_at is None
    assert token_calls(exact_sandbox) == 1

    clock.advance(300)  # a second run within 10 minutes
    call_api(config, authenticator(config, clock))
    assert token_calls(exact_sandbox) == 1


def test_refresh_happens_in_the_last_30_seconds_and_is_stored_first(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    auth = authenticator(config, clock)
    call_api(config, auth)
    first = store_of(config).read()

    clock.advance(560)
    call_api(config, auth)
    assert token_calls(exact_sandbox) == 1  # 40 s left: too early to ask

    clock.advance(15)
    call_api(config, auth)
    second = store_of(config).read()
    assert token_calls(exact_sandbox) == 2
    assert second.refresh_token != first.refresh_token
    assert second.access_token == auth.access_token != first.access_token


def test_too_early_answer_keeps_the_current_token(exact_sandbox_factory, config_for):
    sandbox = exact_sandbox_factory(refresh_too_early_seconds=590)  # stricter than our 570
    config = config_for(sandbox)
    clock = SyncedClock(sandbox)
    auth = authenticator(config, clock)
    call_api(config, auth)
    token = auth.access_token

    clock.advance(575)
    call_api(config, auth)  # refused as too early: the current token still works
    assert auth.access_token == token
    assert token_calls(sandbox) == 2

    clock.advance(17)
    call_api(config, auth)
    assert auth.access_token != token
    assert store_of(config).read().access_token == auth.access_token


def test_a_run_adopts_the_pair_another_run_rotated(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    first, second = authenticator(config, clock), None
    call_api(config, first)
    second = authenticator(config, clock)  # started while the first was running
    clock.advance(575)
    call_api(config, first)  # rotates
    call_api(config, second)  # must not spend the rotated token again
    assert token_calls(exact_sandbox) == 2
    assert second.access_token == first.access_token


def _dead_store(sandbox, config: dict, clock: SyncedClock) -> None:
    """Leave a store whose refresh token Exact has retired (as from an old backup)."""
    auth = authenticator(config, clock)
    call_api(config, auth)
    backup = store_of(config).read()
    for _ in range(2):
        clock.advance(575)
        call_api(config, auth)
    clock.advance(700)
    store_of(config).write(backup)


def test_dead_refresh_token_asks_for_reauthorization(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    _dead_store(exact_sandbox, config, clock)
    stored = store_of(config).read()

    with pytest.raises(ReauthorizationRequired, match="tap-exactonline-authorize") as error:
        call_api(config, authenticator(config, clock))
    for secret in (stored.refresh_token, config["refresh_token"], config["client_secret"]):
        assert secret not in str(error.value)


def test_new_bootstrap_token_replaces_a_dead_store(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    _dead_store(exact_sandbox, config, clock)
    config["refresh_token"] = exact_sandbox.issue_refresh_token("nl")

    call_api(config, authenticator(config, clock))
    assert store_of(config).read().refresh_token not in (None, config["refresh_token"])


def _wait_for_token_calls(sandbox, count: int) -> None:
    # The sandbox logs a call when it answers: wait until the slow one is really done.
    for _ in range(100):
        if token_calls(sandbox) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the slow token call never completed")


def test_timed_out_refresh_recovers_with_the_previous_token(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    auth = authenticator(config, clock, timeout=0.3)
    call_api(config, auth)
    old_refresh = store_of(config).read().refresh_token

    clock.advance(575)
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=1.0, count=1)
    call_api(config, auth)  # the refresh times out (Exact rotated anyway); old token still valid
    _wait_for_token_calls(exact_sandbox, 2)
    pending = store_of(config).read()
    assert pending.refresh_token == old_refresh and pending.refresh_started_at is not None

    clock.advance(30)  # the access token is now expired
    call_api(config, auth)
    recovered = store_of(config).read()
    assert recovered.refresh_token != old_refresh and recovered.refresh_started_at is None
    assert sum(clock.slept) >= 500  # waited for Exact's window instead of hammering it


KILLED_RUN = textwrap.dedent("""
    import os, sys, time
    from tap_exactonline.auth import ExactAuthenticator
    from tap_exactonline.token_store import TokenStore
    config, offset = {config!r}, {offset!r}
    store = TokenStore(config["token_store_path"], config["token_store_key"], config["client_id"])
    original_write = store.write
    def write(record):
        if record.refresh_started_at is None:  # the new pair: die before it is stored
            os._exit(9)
        original_write(record)
    store.write = write
    auth = ExactAuthenticator(base_url=config["base_url"], client_id=config["client_id"],
                              client_secret=config["client_secret"], store=store,
                              clock=lambda: time.time() + offset)
    auth.update_access_token()
""")


def test_process_killed_between_receiving_and_storing_recovers(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    call_api(config, authenticator(config, clock))
    old_refresh = store_of(config).read().refresh_token
    clock.advance(575)

    script = KILLED_RUN.format(config=config, offset=clock.offset)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60,
                            check=False)
    assert killed.returncode == 9, killed.stderr
    assert token_calls(exact_sandbox) == 2  # Exact rotated; the new pair is lost
    assert store_of(config).read().refresh_token == old_refresh

    clock.advance(30)
    auth = authenticator(config, clock)
    call_api(config, auth)
    assert store_of(config).read().refresh_token != old_refresh
    assert store_of(config).read().access_token == auth.access_token


CONCURRENT_RUN = textwrap.dedent("""
    import hashlib, json, sys
    from tap_exactonline.auth import ExactAuthenticator
    from tap_exactonline.token_store import TokenStore
    config = json.load(open(sys.argv[1]))
    store = TokenStore(config["token_store_path"], config["token_store_key"], config["client_id"])
    auth = ExactAuthenticator(base_url=config["base_url"], client_id=config["client_id"],
                              client_secret=config["client_secret"], store=store,
                              bootstrap_refresh_token=config["refresh_token"])
    auth.update_access_token()
    print(hashlib.sha256(auth.access_token.encode()).hexdigest())
""")


def test_two_processes_at_once_never_spend_the_same_token(exact_sandbox, config_for,
                                                          tmp_path: Path):
    config = config_for(exact_sandbox)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=0.5, count=2)

    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_RUN, str(config_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]  # the same access token: the second adopted it
    assert token_calls(exact_sandbox) == 1


def test_token_endpoint_server_error_is_retried(exact_sandbox, config_for):
    config = config_for(exact_sandbox)
    exact_sandbox.add_fault(path="oauth2/token", status=503, count=1)
    clock = SyncedClock(exact_sandbox)
    call_api(config, authenticator(config, clock))
    assert token_calls(exact_sandbox) == 2
    assert store_of(config).read().refresh_token != config["refresh_token"]


def test_invalid_client_secret_is_fatal_and_names_no_secret(exact_sandbox, config_for):
    config = config_for(exact_sandbox, client_secret="wrong-" + "x" * 20)
    with pytest.raises(ExactAuthError, match="invalid_client") as error:
        call_api(config, authenticator(config, SyncedClock(exact_sandbox)))
    assert config["client_secret"] not in str(error.value)
    assert token_calls(exact_sandbox) == 1


def test_two_tap_runs_at_once_share_one_refresh(exact_sandbox, config_for, tmp_path: Path):
    config = config_for(exact_sandbox, divisions=[101])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=0.5, count=2)
    tap = str(Path(sys.executable).with_name("tap-exactonline"))

    procs = [subprocess.Popen([tap, "--config", str(config_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], [err[-1500:] for _, err in outputs]
    accounts = len(exact_sandbox.rows("Accounts", 101))
    for stdout, _ in outputs:
        records = [line for line in stdout.splitlines() if '"stream":"accounts"' in line
                   and '"type":"RECORD"' in line]
        assert len(records) == accounts
    assert token_calls(exact_sandbox) == 1


def test_expired_refresh_token_asks_for_reauthorization(exact_sandbox_factory, config_for):
    sandbox = exact_sandbox_factory(refresh_token_seconds=3600)  # instead of 30 days
    config = config_for(sandbox)
    clock = SyncedClock(sandbox)
    call_api(config, authenticator(config, clock))
    clock.advance(7200)  # nobody ran the tap for two hours
    with pytest.raises(ReauthorizationRequired, match="expired"):
        call_api(config, authenticator(config, clock))
