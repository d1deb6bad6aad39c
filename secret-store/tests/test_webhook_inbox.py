"""The webhook inboxes' database, on SQLite and on a real PostgreSQL server (`database_url`)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from secret_store.database import engine_for
from secret_store.webhook_inbox import InboxDatabase, InboxError, inbox_url


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(name: str, division: int = 101, topic: str = "Accounts") -> dict:
    return {"Topic": topic, "Division": division, "Action": "Update", "Key": name}


def test_a_repeat_is_refused_by_the_constraint_even_after_the_entry_was_cleared(database_url):
    inbox = InboxDatabase(database_url)
    assert inbox.add_exact(entry("a"), key("a")) is True
    assert inbox.add_exact(entry("a"), key("a")) is False
    assert InboxDatabase(database_url).add_exact(entry("a"), key("a")) is False  # a restart
    assert [e["Key"] for e in inbox.exact_entries()] == ["a"]
    assert inbox.clear_exact(inbox.now() + 1, lambda e: True) == 1
    assert inbox.exact_entries() == []
    assert inbox.add_exact(entry("a"), key("a")) is False  # cleared, still remembered
    assert inbox.add_mailchimp({"type": "cleaned", "fired_at": "2026-11-27T10:00:00Z"},
                               key("a")) is True  # each inbox has its own keys


def test_clear_keeps_what_arrived_after_the_moment_and_what_was_not_polled(database_url):
    inbox = InboxDatabase(database_url)
    inbox.add_exact(entry("old-polled"), key("1"))
    inbox.add_exact(entry("old-other", topic="Contacts"), key("2"))
    moment = inbox.now()
    time.sleep(0.01)
    inbox.add_exact(entry("during-the-run"), key("3"))  # arrived while the run went on
    assert inbox.clear_exact(moment, lambda e: e["Topic"] == "Accounts") == 1
    kept = inbox.exact_entries()
    assert [e["Key"] for e in kept] == ["old-other", "during-the-run"]
    assert kept[0]["Division"] == 101 and kept[0]["received_at"] < moment < kept[1]["received_at"]


def test_the_seen_keys_are_bounded_and_keep_the_newest(database_url):
    inbox = InboxDatabase(database_url, seen_limit=5)
    keys = [key(str(n)) for n in range(40)]
    for n, k in enumerate(keys):
        inbox.add_exact(entry(str(n)), k)
    assert inbox.seen_count() <= 2 * 5
    reopened = InboxDatabase(database_url, seen_limit=5)  # as after a restart
    assert not any(reopened.add_exact(entry("again"), k) for k in keys[-5:])
    assert reopened.add_exact(entry("0"), keys[0]) is True  # long forgotten


def test_concurrent_receivers_record_one_delivery_once(database_url):
    inbox = InboxDatabase(database_url)
    inbox.add_exact(entry("warm-up"), key("warm-up"))  # tables made
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        for n in range(10):
            results.append(InboxDatabase(database_url).add_exact(entry(f"k{n}"), key(f"k{n}")))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 10 and len(results) == 40
    assert sorted(e["Key"] for e in inbox.exact_entries())[:3] == ["k0", "k1", "k2"]
    assert len(inbox.exact_entries()) == 11


def test_mailchimp_events_are_trimmed_per_list_type_and_bookmark(database_url):
    inbox = InboxDatabase(database_url)
    events = [
        ("unsubscribe", "2026-11-27T10:00:00Z", "L1"),
        ("unsubscribe", "2026-11-27T12:00:00Z", "L1"),
        ("upemail", "2026-11-27T10:00:00Z", "L1"),
        ("unsubscribe", "2026-11-27T10:00:00Z", "L2"),
        ("cleaned", "2026-11-27 09:00:00", None),  # Mailchimp's own form, no list named
    ]
    for n, (kind, fired_at, list_id) in enumerate(events):
        assert inbox.add_mailchimp({"type": kind, "fired_at": fired_at, "list_id": list_id,
                                    "email": f"{n}@example.com"}, key(str(n)))
    assert inbox.trim_mailchimp(["L1", None], ["unsubscribe", "cleaned"],
                                "2026-11-27T11:00:00+00:00") == 2
    left = [(e["type"], e["list_id"], e["fired_at"]) for e in inbox.mailchimp_entries()]
    assert left == [("unsubscribe", "L1", "2026-11-27T12:00:00Z"),
                    ("upemail", "L1", "2026-11-27T10:00:00Z"),
                    ("unsubscribe", "L2", "2026-11-27T10:00:00Z")]


def test_two_tenants_on_one_url_keep_separate_inboxes(database_url, monkeypatch):
    monkeypatch.setenv("EXACTMC_DATABASE_URL", database_url)  # the fleet's one database
    for tenant in ("acme", "globex"):
        monkeypatch.setenv("EXACTMC_TENANT", tenant)
        inbox = InboxDatabase(inbox_url())
        assert inbox.add_exact(entry(f"{tenant}-key"), key("same delivery")) is True
    for tenant in ("acme", "globex"):
        monkeypatch.setenv("EXACTMC_TENANT", tenant)
        assert [e["Key"] for e in InboxDatabase(inbox_url()).exact_entries()] == [
            f"{tenant}-key"]


def test_readers_of_a_file_never_written_see_nothing_and_create_nothing(tmp_path):
    url = inbox_url(str(tmp_path / "inbox.sqlite"))
    inbox = InboxDatabase(url)
    assert inbox.exact_entries() == [] and inbox.mailchimp_entries() == []
    assert inbox.clear_exact(time.time(), lambda e: True) == 0
    assert not (tmp_path / "inbox.sqlite").exists()
    inbox.add_exact(entry("a"), key("a"))
    assert oct(os.stat(tmp_path / "inbox.sqlite").st_mode & 0o777) == "0o600"


def test_the_default_file_is_under_meltanos_system_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))
    assert inbox_url() == f"sqlite:///{tmp_path / 'sys' / 'webhooks' / 'inbox.sqlite'}"
    monkeypatch.setenv("EXACTMC_DATABASE_URL", "postgresql://db/fleet")
    assert inbox_url() == "postgresql://db/fleet"
    assert inbox_url(str(tmp_path / "own.sqlite")).endswith("own.sqlite")  # its setting wins


def test_an_older_versions_jsonl_inbox_is_refused_with_what_to_do(tmp_path: Path):
    old = tmp_path / "webhook-inbox.jsonl"
    old.write_text('{"Topic": "Accounts", "Division": 101, "Key": "k"}\n')
    with pytest.raises(InboxError, match="not a SQLite database"):
        InboxDatabase(inbox_url(str(old))).add_exact(entry("a"), key("a"))
    assert old.read_text().startswith('{"Topic"')  # left as it was


def test_a_writer_holding_the_sqlite_file_makes_a_delivery_fail_not_hang(tmp_path, monkeypatch):
    monkeypatch.setattr("secret_store.webhook_inbox.LOCK_WAIT_SECONDS", 0.2)
    url = inbox_url(str(tmp_path / "inbox.sqlite"))
    inbox = InboxDatabase(url)
    inbox.add_exact(entry("a"), key("a"))
    engine = engine_for(url, "inbox")
    with engine.connect() as stuck:
        stuck.exec_driver_sql("BEGIN IMMEDIATE")  # e.g. a stuck process holding the write lock
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError):
            inbox.add_exact(entry("b"), key("b"))
        assert time.monotonic() - started < 5
        stuck.exec_driver_sql("ROLLBACK")
    assert inbox.add_exact(entry("b"), key("b")) is True
