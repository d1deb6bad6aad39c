"""The mapper's store behind one database URL (issue 10): SQLite by default, PostgreSQL for a
fleet, one namespace per tenant; the same outputs either way."""

from __future__ import annotations

import json
import queue
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from mapper_test_kit import (
    account,
    contact,
    dead_letters,
    final_state,
    guid,
    opened_store,
    rec,
    state,
    tap_run,
)
from secret_store.database import DATABASE_URL_ENV, TENANT_ENV
from test_batched_work import audience, run, tap_messages

BAD = contact(9, 1, Email="not an address")  # a dead letter in every run below


def records(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["stream"], m["record"]) for m in messages if m["type"] == "RECORD"]


def rows(config: dict[str, Any]) -> set[str]:
    with opened_store(config) as db:
        return {row_id for (row_id,) in db.execute("SELECT id FROM rows")}


@pytest.fixture
def fleet_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No store setting and no inherited database: what a plugin under Meltano sees."""
    sys_dir = tmp_path / "sys"
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(sys_dir))
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(TENANT_ENV, raising=False)
    return sys_dir


def test_two_tenants_on_one_url_keep_separate_stores_and_ledgers(
        database_url, fleet_env, monkeypatch):
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    by_tenant = {"a": [account(1), account(2)], "b": [account(3)]}
    confirmed = {}
    for tenant, accounts in by_tenant.items():
        monkeypatch.setenv(TENANT_ENV, tenant)
        out = run({}, tap_run({"accounts": accounts, "contacts": [BAD]}))
        confirmed[tenant] = final_state(out)
        assert {r["email"] for s, r in records(out) if s == "members"} == {
            a["Email"] for a in accounts}  # nothing of the other tenant
        assert rows({}) == {a["ID"] for a in accounts} | {BAD["ID"]}
        assert [d["key"] for d in dead_letters({})] == [BAD["ID"]]

    monkeypatch.setenv(TENANT_ENV, "a")  # a's ledger: its outputs were sent, b's were not
    again = run({}, tap_run({"accounts": [*by_tenant["a"], account(3)], "contacts": [BAD]},
                            bookmark=2, echo=confirmed["a"]))
    assert [r["email"] for s, r in records(again) if s == "members"] == [account(3)["Email"]]
    assert len(dead_letters({})) == 1  # an unchanged rejection is reported once per tenant
    assert not list(fleet_env.rglob("*.sqlite"))  # the default files were not used


def test_a_run_on_postgresql_sends_what_a_run_on_sqlite_sends(
        postgres_url, fleet_env, monkeypatch):
    messages = [*tap_messages(), *tap_run({"contacts": [BAD]})]
    on_sqlite = run({}, messages)  # the default store: a file under MELTANO_SYS_DIR_ROOT
    store = fleet_env / "mapper-exact-mailchimp" / "lookup.sqlite"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600

    monkeypatch.setenv(DATABASE_URL_ENV, postgres_url)
    monkeypatch.setenv(TENANT_ENV, "acme")
    on_postgres = run({}, messages)

    assert on_postgres == on_sqlite and records(on_sqlite)
    assert [(d["stream"], d["key"], d["reason"]) for d in dead_letters({})] == [
        (d["stream"], d["key"], d["reason"]) for d in dead_letters({"store_url": str(store)})]
    echo = state(final_state(on_postgres))  # Meltano's saved state opens the next run
    assert records(run({}, [echo, *messages])) == []  # remembered, as on SQLite


def test_store_url_wins_over_the_older_path_and_the_fleet_database(
        postgres_url, fleet_env, monkeypatch, tmp_path):
    monkeypatch.setenv(DATABASE_URL_ENV, postgres_url)
    own = tmp_path / "own.sqlite"
    run({"store_url": f"sqlite:///{own}", "lookup_store_path": str(tmp_path / "old.sqlite")},
        tap_run({"accounts": [account(1)]}))
    assert rows({"store_url": str(own)}) == {guid(1)}
    assert not (tmp_path / "old.sqlite").exists()
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:  # the fleet database was not touched
            assert connection.execute(sa.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_name='rows'"
            )).scalar() == 0
    finally:
        engine.dispose()


def test_the_reconcile_namespace_is_a_store_of_its_own(mapper_config, monkeypatch):
    run(mapper_config, tap_run({"accounts": [account(1)]}))
    reconcile = mapper_config | {"store_namespace": "mapper_reconcile"}
    if "lookup_store_path" in mapper_config:  # a file setting is the store: the default beside
        reconcile = {"store_namespace": "mapper_reconcile"}
        monkeypatch.setenv("MELTANO_SYS_DIR_ROOT",
                           str(Path(mapper_config["lookup_store_path"]).parent))
    assert records(run(reconcile, tap_run({"accounts": [account(1)]})))  # sent again
    assert rows(reconcile) == {guid(1)}
    if "lookup_store_path" in mapper_config:  # the file the reconcile job always had
        sys_dir = Path(mapper_config["lookup_store_path"]).parent
        assert (sys_dir / "mapper-exact-mailchimp" / "reconcile-lookup.sqlite").exists()


def test_a_mapper_killed_mid_run_on_postgresql_frees_its_lock_and_loses_nothing(
        postgres_url, tmp_path):
    config = {"store_url": postgres_url}
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    # A later stream with a STATE inside: there the first sync's outputs and STATEs go out.
    more = [rec("accounts", account(n, Division=102)) for n in (7, 8)]
    messages = [*tap_messages(), more[0], state({"more": 1}), more[1], state({"more": 2})]
    executable = Path(sys.executable).parent / "mapper-exact-mailchimp"
    mapper = subprocess.Popen([str(executable), "--config", str(config_file)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in mapper.stdout], daemon=True).start()
    try:  # all but the last message, then stdin stays open: the mapper waits for more
        mapper.stdin.write("".join(json.dumps(m) + "\n" for m in messages[:-1]))
        mapper.stdin.flush()
        delivered = []
        while not delivered or delivered[-1]["type"] != "STATE":  # flushed, lock held
            delivered.append(json.loads(lines.get(timeout=60)))
    finally:
        mapper.kill()  # SIGKILL: no cleanup of any kind
        mapper.wait()
    saved = delivered[-1]["value"]
    resume = max(i for i, m in enumerate(messages) if m == state(saved)) + 1
    # Meltano saved that STATE; the tap resends everything after it, opened by its echo.
    retry = run(config, [state(saved), *messages[resume:]])

    clean = run(config | {"store_namespace": "m_clean"}, messages)  # an empty store
    assert audience(delivered + retry) == audience(clean)
