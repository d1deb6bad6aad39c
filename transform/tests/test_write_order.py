"""Batched writes go to the store in key order (issue 9: at 100k accounts the store is far
larger than SQLite's page cache and Exact's keys are random GUIDs, so writes in arrival order
visit a random index page per row), and a key written twice in one batch still ends with its
last value."""

from __future__ import annotations

import itertools

from mapper_exact_mailchimp.ingest import Ingestor
from mapper_exact_mailchimp.ledger import OutputLedger
from mapper_exact_mailchimp.lookup_store import LookupStore
from mapper_exact_mailchimp.store import Database, connect
from mapper_test_kit import DIVISION, account, guid

_namespaces = itertools.count(1)


def open_db(url: str) -> Database:
    return connect(url, f"mapper_order{next(_namespaces)}")


def test_a_key_written_twice_in_one_batch_keeps_its_last_value(database_url):
    db = open_db(database_url)
    try:
        store, ledger = LookupStore(db), OutputLedger(db)
        ingestor = Ingestor(store)
        for record in (account(3, Name="old"), account(1), account(3, Name="new"), account(2)):
            ingestor.ingest("accounts", record)
        ingestor.drain()
        ledger.record("products", "p2", "h-old", {"id": "p2", "v": "old"}, None)
        ledger.record("products", "p1", "h1", {"id": "p1"}, None)
        ledger.record("products", "p2", "h-new", {"id": "p2", "v": "new"}, None)
        ledger.save()
        db.commit()

        assert store.row("accounts", DIVISION, guid(3))["Name"] == "new"
        assert [store.row("accounts", DIVISION, guid(n))["ID"] for n in (1, 2)] == [
            guid(1), guid(2)]
        assert ledger.payload("products", "p2") == {"id": "p2", "v": "new"}
    finally:
        db.close()


def test_a_batch_is_written_in_key_order(tmp_path):
    """SQLite numbers rows as they are inserted: a batch arriving in reverse key order is
    numbered in key order (rows, dirty marks and ledger records alike)."""
    db = connect(tmp_path / "order.sqlite")
    try:
        store, ledger = LookupStore(db), OutputLedger(db)
        ingestor = Ingestor(store)
        for n in range(20, 0, -1):
            ingestor.ingest("accounts", account(n))
            ledger.record("products", f"p{n:02}", f"h{n}", {"id": n}, None)
        ingestor.drain()
        store.save()
        ledger.save()

        def in_insert_order(query: str) -> list[tuple]:
            return list(db.execute(query))

        rows = in_insert_order("SELECT division, id FROM rows ORDER BY rowid")
        marks = in_insert_order("SELECT kind, division, id FROM dirty ORDER BY rowid")
        records = in_insert_order("SELECT key FROM emitted ORDER BY rowid")
        assert len(rows) == 20 and rows == sorted(rows)
        assert len(marks) >= 20 and marks == sorted(marks)
        assert len(records) == 20 and records == sorted(records)
    finally:
        db.close()
