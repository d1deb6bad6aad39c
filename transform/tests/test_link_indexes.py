"""The lookup store's link indexes hold only rows that have the link (issue 9: most rows have
no number, accounts no parent), on both backends; a store made with the older full indexes
is migrated when opened and answers the same lookups."""

from __future__ import annotations

import itertools

from mapper_exact_mailchimp.ingest import Ingestor
from mapper_exact_mailchimp.lookup_store import LookupStore
from mapper_exact_mailchimp.store import Database, connect
from mapper_test_kit import DIVISION, account, guid, invoice

_namespaces = itertools.count(1)

OLD_SCHEMA = """
CREATE TABLE rows (
    stream TEXT NOT NULL, division BIGINT NOT NULL, id TEXT NOT NULL,
    parent TEXT, number TEXT, data TEXT NOT NULL,
    PRIMARY KEY (stream, division, id));
CREATE INDEX rows_by_parent ON rows (stream, division, parent, id);
CREATE INDEX rows_by_number ON rows (stream, division, number, id)
"""


def index_names(db: Database) -> set[str]:
    if db.is_sqlite:
        query = "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='rows'"
    else:
        query = ("SELECT indexname FROM pg_indexes WHERE schemaname=current_schema()"
                 " AND tablename='rows'")
    return {name for (name,) in db.execute(query)}


def plan(db: Database, where: str, order: str = "id") -> str:
    """The plan of a link lookup (literal values: a plan, not data; PostgreSQL told to avoid
    a sequential scan, which it prefers on a table this small)."""
    query = f"SELECT data FROM rows WHERE stream='x' AND division=1 AND {where} ORDER BY {order}"  # noqa: S608
    if db.is_sqlite:
        return " ".join(str(row) for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
    db.execute("SET LOCAL enable_seqscan = off")
    found = " ".join(row[0] for row in db.execute(f"EXPLAIN {query}"))
    db.rollback()
    return found


def test_an_older_store_is_migrated_to_partial_link_indexes(database_url):
    db = connect(database_url, f"mapper_links{next(_namespaces)}")
    try:
        db.script(OLD_SCHEMA)
        old = LookupStore(db)  # the old store's rows, written before the migration
        ingestor = Ingestor(old)
        for record in (account(1), account(2)):
            ingestor.ingest("accounts", record)
        ingestor.drain()
        for record in (invoice(1, 1), invoice(2, 1), invoice(3, 2)):
            ingestor.ingest("sales_invoices", record)
        ingestor.drain()
        db.commit()
        db.script(OLD_SCHEMA.replace("CREATE TABLE rows", "CREATE TABLE IF NOT EXISTS rows")
                  .replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))  # still the old ones
        assert index_names(db) >= {"rows_by_parent", "rows_by_number"}

        store = LookupStore(db)
        db.commit()

        names = index_names(db)
        assert {"rows_with_parent", "rows_with_number"} <= names
        assert not names & {"rows_by_parent", "rows_by_number"}
        number = str(invoice(3, 2)["InvoiceNumber"])
        assert store.child_ids("sales_invoices", DIVISION, guid(1)) == sorted(
            str(invoice(n, 1)["InvoiceID"]) for n in (1, 2))
        assert [r["InvoiceID"] for r in store.by_number("sales_invoices", DIVISION, number)
                ] == [invoice(3, 2)["InvoiceID"]]
        assert store.row("accounts", DIVISION, guid(2))["ID"] == guid(2)
        assert "rows_with_parent" in plan(db, "parent='p'")
        assert "rows_with_number" in plan(db, "number IN ('a', 'b')", order="number, id")
        assert "rows_with_number" in plan(db, "number = 'a'")
    finally:
        db.close()
