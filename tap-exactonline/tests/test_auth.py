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
from tap_exactonline.token_store import TokenRecord, TokenStore


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
    deadline = time.monotonic() + 30  # a 1.5 s hold; generous for a busy machine
    while token_calls(sandbox) < count:
        assert time.monotonic() < deadline, "the slow token call never completed"
        time.sleep(0.05)


def test_timed_out_refresh_retried_while_exact_still_works_on_it(exact_sandbox, config_for):
    """The immediate retry is served before the slow call: no wait, and nothing is lost."""
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    auth = authenticator(config, clock, timeout=0.3)
    call_api(config, auth)
    old_refresh = store_of(config).read().refresh_token

    clock.advance(575)
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=1.0, count=1)
    call_api(config, auth)
    _wait_for_token_calls(exact_sandbox, 3)
    # The slow one came too late: too early, or (the new pair in use) old token.
    assert token_statuses(exact_sandbox) in ([200, 200, 400], [200, 200, 401])
    recovered = store_of(config).read()
    assert recovered.refresh_token != old_refresh and recovered.refresh_started_at is None
    assert sum(clock.slept) < 5
    stored_pair_works(config, clock)


def test_timed_out_refresh_recovers_with_the_previous_token(exact_sandbox, config_for):
    """Exact rotated before the retry: "too early" proves it; the old token is still alive."""
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)

    def sleep(seconds: float) -> None:  # real time too, so the slow call finishes first
        time.sleep(min(seconds, 0.5))
        clock.sleep(seconds)

    auth = authenticator(config, clock, timeout=0.3, sleep=sleep)
    call_api(config, auth)
    old_refresh = store_of(config).read().refresh_token

    clock.advance(575)
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=0.4, count=1)
    call_api(config, auth)  # too early: the current access token is used up meanwhile
    pending = store_of(config).read()
    assert pending.refresh_token == old_refresh and pending.refresh_started_at is not None
    assert token_statuses(exact_sandbox) == [200, 200, 400]

    clock.advance(30)  # the access token is now expired
    call_api(config, auth)
    recovered = store_of(config).read()
    assert recovered.refresh_token != old_refresh and recovered.refresh_started_at is None
    assert 500 <= sum(clock.slept) <= 620  # waited for Exact's window instead of hammering it
    assert token_statuses(exact_sandbox) == [200, 200, 400, 400, 200]
    stored_pair_works(config, clock)


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


@pytest.fixture(params=["directory", "postgresql"])
def token_store_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Today's directory store, or a fleet's PostgreSQL database (a real server)."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return str(tmp_path / "store")


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


def test_two_tap_runs_at_once_share_one_refresh(exact_sandbox, config_for, tmp_path: Path,
                                                token_store_path):
    """Two jobs (one per division) of one Exact authorization start together; on PostgreSQL
    they may be on two machines: the row lock makes the second adopt the first's refresh."""
    config = config_for(exact_sandbox, token_store_path=token_store_path)
    paths = []
    for division in (101, 102):
        paths.append(tmp_path / f"config-{division}.json")
        paths[-1].write_text(json.dumps({**config, "divisions": [division]}))
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=0.5, count=2)
    tap = str(Path(sys.executable).with_name("tap-exactonline"))

    procs = [subprocess.Popen([tap, "--config", str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for path in paths]
    outputs = [proc.communicate(timeout=120) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], [err[-1500:] for _, err in outputs]
    for division, (stdout, _) in zip((101, 102), outputs, strict=True):
        records = [line for line in stdout.splitlines() if '"stream":"accounts"' in line
                   and '"type":"RECORD"' in line]
        assert len(records) == len(exact_sandbox.rows("Accounts", division))
    assert token_calls(exact_sandbox) == 1


def test_expired_refresh_token_asks_for_reauthorization(exact_sandbox_factory, config_for):
    sandbox = exact_sandbox_factory(refresh_token_seconds=3600)  # instead of 30 days
    config = config_for(sandbox)
    clock = SyncedClock(sandbox)
    call_api(config, authenticator(config, clock))
    clock.advance(7200)  # nobody ran the tap for two hours
    with pytest.raises(ReauthorizationRequired, match="expired"):
        call_api(config, authenticator(config, clock))


# -- issue 7: no lock-out after a lost refresh, no stall for a call that never arrived, 401 -------

def token_statuses(sandbox) -> list[int]:
    return [c["status"] for c in sandbox.calls()["calls"] if c["endpoint"] == "oauth2/token"]


def assert_no_token_in(text: str, *records) -> None:
    for record in records:
        for value in (record.refresh_token, record.access_token):
            assert not value or value not in text


def stored_pair_works(config: dict, clock: SyncedClock) -> None:
    """After every scenario the store holds a pair a fresh run can use (and refresh)."""
    auth = authenticator(config, clock)
    call_api(config, auth)
    clock.advance(580)
    call_api(config, auth)  # its refresh token is alive too
    assert store_of(config).read().refresh_started_at is None


@pytest.mark.parametrize("bootstrap", [True, False], ids=["bootstrap", "stored"])
def test_dropped_token_call_is_retried_at_once(exact_sandbox, config_for, bootstrap):
    """Nothing was served, so nothing rotated: no reason to wait ten minutes."""
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    if not bootstrap:
        call_api(config, authenticator(config, clock))
        clock.advance(700)  # the stored access token has expired
    exact_sandbox.add_fault(path="oauth2/token", kind="drop", count=1)
    call_api(config, authenticator(config, clock))
    assert sum(clock.slept) < 10
    assert store_of(config).read().refresh_started_at is None
    stored_pair_works(config, clock)


@pytest.mark.parametrize("bootstrap", [True, False], ids=["bootstrap", "stored"])
def test_token_endpoint_down_stops_soon_with_the_store_intact(exact_sandbox, config_for,
                                                               bootstrap):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    if not bootstrap:
        call_api(config, authenticator(config, clock))
        clock.advance(700)
    exact_sandbox.add_fault(path="oauth2/token", kind="drop", count=50)
    with pytest.raises(ExactAuthError, match="next run retries"):
        call_api(config, authenticator(config, clock))
    assert sum(clock.slept) < 10  # a few quick retries, not a ten-minute stall
    exact_sandbox.clear_faults()
    clock.advance(5)
    call_api(config, authenticator(config, clock))  # the endpoint is back: nothing was lost
    stored_pair_works(config, clock)


@pytest.mark.parametrize("bootstrap", [True, False], ids=["bootstrap", "stored"])
@pytest.mark.parametrize("fault", [{"kind": "drop_after"}, {"kind": "garble"}],
                         ids=["drop_after", "garble"])
def test_lost_answer_waits_for_exact_within_the_run(exact_sandbox, config_for, caplog,
                                                    bootstrap, fault):
    """Exact rotated, the answer never arrived (or was cut off): the old token is still alive."""
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    if not bootstrap:
        call_api(config, authenticator(config, clock))
        clock.advance(700)
    exact_sandbox.add_fault(path="oauth2/token", count=1, **fault)
    with caplog.at_level("INFO"):
        call_api(config, authenticator(config, clock))
    # lost, "too early" (proof of the loss), then the retry Exact allows: no 4xx storm
    assert token_statuses(exact_sandbox)[-3:][1:] == [400, 200]
    assert 560 <= sum(clock.slept) <= 620
    stored = store_of(config).read()
    assert stored.refresh_started_at is None
    assert_no_token_in(caplog.text, stored)
    assert config["refresh_token"] not in caplog.text
    stored_pair_works(config, clock)


@pytest.mark.parametrize("bootstrap", [True, False], ids=["bootstrap", "stored"])
def test_lost_answer_beyond_max_wait_stops_cleanly_and_a_later_run_recovers(
    exact_sandbox, config_for, bootstrap
):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    if not bootstrap:
        call_api(config, authenticator(config, clock))
        clock.advance(700)
    exact_sandbox.add_fault(path="oauth2/token", kind="drop_after", count=1)
    for _ in range(2):  # the lost run, and one started right after it
        with pytest.raises(ExactAuthError, match="next run") as error:
            call_api(config, authenticator(config, clock, lost_refresh_max_wait=30))
        assert not isinstance(error.value, ReauthorizationRequired)
        assert sum(clock.slept) <= 30
        clock.advance(5)
    pending = store_of(config).read()
    assert pending.refresh_token and pending.refresh_started_at is not None
    assert_no_token_in(str(error.value), pending)
    assert token_statuses(exact_sandbox).count(400) <= 2  # Exact's error limit is 10 an hour

    clock.advance(900)  # the next scheduled run
    call_api(config, authenticator(config, clock, lost_refresh_max_wait=30))
    stored_pair_works(config, clock)


def test_store_left_by_a_killed_bootstrap_of_an_older_version_recovers(exact_sandbox,
                                                                        config_for):
    """Older versions marked the call but kept the bootstrap only in the config."""
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    store_of(config).write(TokenRecord(refresh_started_at=clock(), base_url=config["base_url"]))
    lost = requests.post(f"{config['base_url']}/api/oauth2/token", timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": config["refresh_token"],
        "client_id": config["client_id"], "client_secret": config["client_secret"]})
    assert lost.status_code == 200  # ... and the process died before storing it

    clock.advance(10)
    call_api(config, authenticator(config, clock))
    assert 550 <= sum(clock.slept) <= 620
    stored_pair_works(config, clock)


SIGKILLED_RUN = textwrap.dedent("""
    import sys, time
    from tap_exactonline.auth import ExactAuthenticator
    from tap_exactonline.token_store import TokenStore
    config, offset = {config!r}, {offset!r}
    store = TokenStore(config["token_store_path"], config["token_store_key"], config["client_id"])
    auth = ExactAuthenticator(base_url=config["base_url"], client_id=config["client_id"],
                              client_secret=config["client_secret"], store=store,
                              bootstrap_refresh_token=config["refresh_token"],
                              clock=lambda: time.time() + offset)
    auth.update_access_token()
    sys.exit(3)  # never reached: killed while the token call is in flight
""")


@pytest.mark.parametrize("bootstrap", [True, False], ids=["bootstrap", "stored"])
def test_sigkill_during_the_token_call_then_two_runs_recover(exact_sandbox, config_for,
                                                              bootstrap):
    config = config_for(exact_sandbox)
    clock = SyncedClock(exact_sandbox)
    if not bootstrap:
        call_api(config, authenticator(config, clock))
        clock.advance(575)
    calls_before = token_calls(exact_sandbox)
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=1.5, count=1)
    proc = subprocess.Popen([sys.executable, "-c",
                             SIGKILLED_RUN.format(config=config, offset=clock.offset)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill it once its token call is held by the sandbox (the slow fault is taken), however
    # long a busy machine takes to start it (fixed waits of 4 + 0.3 s raced that).
    deadline = time.monotonic() + 60
    while exact_sandbox.fault_plan.list():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    assert store_of(config).read().refresh_started_at is not None  # marked before the call
    proc.kill()
    proc.wait(timeout=10)
    assert proc.returncode == -9
    _wait_for_token_calls(exact_sandbox, calls_before + 1)  # Exact rotated after the kill
    clock.advance(30)  # a stored access token has expired by the next run

    # The next run, right away: Exact says "too early", so the loss is certain; the run stops
    # with the store intact instead of burning its error budget or asking for a person.
    with pytest.raises(ExactAuthError, match="next run") as error:
        call_api(config, authenticator(config, clock, lost_refresh_max_wait=60))
    assert not isinstance(error.value, ReauthorizationRequired)
    assert sum(clock.slept) <= 60
    # The run after that may wait within the run (default limit) and recovers.
    clock.advance(20)
    call_api(config, authenticator(config, clock))
    stored_pair_works(config, clock)


def _tap_run(config: dict, run_tap):
    return run_tap(config, select=["cost_centers"])


def test_401_on_a_data_call_refreshes_once_and_retries(exact_sandbox, config_for, run_tap):
    """The clock is off: the token we think valid is expired for Exact."""
    config = config_for(exact_sandbox, divisions=[101])
    first = _tap_run(config, run_tap)
    assert token_calls(exact_sandbox) == 1
    exact_sandbox.advance_clock(650)  # Exact's clock only: ours still says the token is fresh

    again = _tap_run(config, run_tap)
    assert again.records("cost_centers") == first.records("cost_centers")
    assert token_calls(exact_sandbox) == 2
    api = [c["status"] for c in exact_sandbox.calls()["calls"] if c["endpoint"] != "oauth2/token"]
    assert api.count(401) == 1


def test_401_with_a_young_token_is_reported_without_looping(exact_sandbox, config_for,
                                                            run_tap, caplog):
    """Exact refuses a new token (too early): the 401 is real (revoked); say so, stop."""
    config = config_for(exact_sandbox, divisions=[101])
    _tap_run(config, run_tap)
    before = store_of(config).read()
    exact_sandbox.add_fault(path=r"/api/v1/", status=401, count=5)
    with pytest.raises(Exception, match="401") as error:
        _tap_run(config, run_tap)
    assert "too early" in str(error.value).lower() or "revoked" in str(error.value).lower()
    statuses = [c["status"] for c in exact_sandbox.calls()["calls"]]
    assert statuses.count(401) == 1 and token_statuses(exact_sandbox) == [200, 400]
    after = store_of(config).read()
    assert after.refresh_token == before.refresh_token and after.refresh_started_at is None
    assert_no_token_in(str(error.value) + caplog.text, after)


def test_a_second_401_after_the_refresh_fails_without_looping(exact_sandbox, config_for,
                                                              run_tap):
    config = config_for(exact_sandbox, divisions=[101])
    _tap_run(config, run_tap)
    exact_sandbox.advance_clock(650)  # so Exact allows the refresh the first 401 triggers
    exact_sandbox.add_fault(path=r"/api/v1/", status=401, count=5)
    with pytest.raises(Exception, match="401"):
        _tap_run(config, run_tap)
    statuses = [c["status"] for c in exact_sandbox.calls()["calls"]
                if c["endpoint"] != "oauth2/token"]
    assert statuses.count(401) == 2  # the call and its one retry
    assert token_statuses(exact_sandbox) == [200, 200]
    assert store_of(config).read().refresh_started_at is None


def test_killed_tap_executable_during_bootstrap_then_two_runs(exact_sandbox, config_for,
                                                              tmp_path: Path):
    """The reported lock-out, end to end: kill -9 during the first token call, run twice."""
    config = config_for(exact_sandbox, divisions=[101], lost_refresh_max_wait=30)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    tap = str(Path(sys.executable).with_name("tap-exactonline"))
    exact_sandbox.add_fault(path="oauth2/token", kind="slow", delay=2.0, count=1)
    killed = subprocess.Popen([tap, "--config", str(config_path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(500):
        if store_of(config).read().refresh_started_at is not None:
            break
        time.sleep(0.02)
    time.sleep(0.3)
    killed.kill()
    assert killed.wait(timeout=10) == -9
    _wait_for_token_calls(exact_sandbox, 1)

    soon = subprocess.run([tap, "--config", str(config_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert soon.returncode != 0 and "next run recovers" in soon.stderr
    assert "Re-authorize" not in soon.stderr
    assert config["refresh_token"] not in soon.stderr + soon.stdout

    exact_sandbox.advance_clock(600)  # the next scheduled run
    later = subprocess.run([tap, "--config", str(config_path)], capture_output=True, text=True,
                           timeout=120, check=False)
    assert later.returncode == 0, later.stderr[-1500:]
    records = [line for line in later.stdout.splitlines() if '"type":"RECORD"' in line
               and '"stream":"accounts"' in line]
    assert len(records) == len(exact_sandbox.rows("Accounts", 101))
    assert token_statuses(exact_sandbox) == [200, 400, 200]
