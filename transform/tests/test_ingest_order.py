"""Issue 9: a batch of rows is written in the order the flush reads them (an account's
contacts together, accounts by id), so the flush's key-ordered reads find their next row on a
page they just read instead of one anywhere in a store far larger than its cache. The order
must not change what is stored: a key twice in one batch keeps its last version."""

from __future__ import annotations

import random

from mapper_exact_mailchimp.ingest import Ingestor
from mapper_exact_mailchimp.lookup_store import LookupStore
from mapper_exact_mailchimp.store import connect
from mapper_test_kit import DIVISION, account, contact, guid


def stored_order(store: LookupStore, stream: str) -> list[str]:
    """Ids of the stream's rows as SQLite stores them (by rowid: write order)."""
    return [row_id for (row_id,) in store.db.execute(
        "SELECT id FROM rows WHERE stream=? ORDER BY rowid", (stream,))]


def test_a_batch_is_written_in_the_order_the_flush_reads_it(tmp_path):
    db = connect(tmp_path / "lookup.sqlite")
    try:
        store = LookupStore(db)
        ingestor = Ingestor(store)
        accounts = [account(n) for n in range(1, 41)]
        # Three contacts per account, arriving in no particular order (Exact's sync feed
        # sends them by change, not by account).
        contacts = [contact(3 * n + k, n) for n in range(1, 41) for k in range(3)]
        random.Random(9).shuffle(accounts)
        random.Random(9).shuffle(contacts)
        for record in accounts:
            ingestor.ingest("accounts", record)
        for record in contacts:
            ingestor.ingest("contacts", record)
        # The same contact again, later in the batch: it moved to an account read before its
        # old one (written in read order, the later version would come first and lose).
        ingestor.ingest("contacts", contact(120, 1, FirstName="Piet"))
        ingestor.drain()

        moved = store.row("contacts", DIVISION, guid(10_120))
        assert moved is not None and moved["FirstName"] == "Piet"
        assert store.parent("contacts", DIVISION, guid(10_120)) == guid(1)
        assert guid(10_120) in store.child_ids("contacts", DIVISION, guid(1))
        assert guid(10_120) not in store.child_ids("contacts", DIVISION, guid(40))
        assert stored_order(store, "accounts") == sorted(record["ID"] for record in accounts)
        by_account = sorted((store.parent("contacts", DIVISION, record["ID"]), record["ID"])
                            for record in contacts)
        assert stored_order(store, "contacts") == [row_id for _, row_id in by_account]
    finally:
        db.close()
