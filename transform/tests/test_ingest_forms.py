"""A tap record reaches the ingest as its JSON text (`msgspec.Raw`, from the executable's
reader) or as a dict (in-process callers): both forms store the same row, links and dirty
marks, and both reject a record that cannot be keyed (issue 9 reads the links of either form
as attributes)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec
from mapper_exact_mailchimp.ingest import Ingestor
from mapper_exact_mailchimp.lookup_store import LookupStore
from mapper_exact_mailchimp.store import connect
from mapper_test_kit import DIVISION, account, guid, invoice

_namespaces = itertools.count(1)


def ingested(database_url: str, form: Any) -> tuple[Any, ...]:
    db = connect(database_url, f"mapper_forms{next(_namespaces)}")
    try:
        store = LookupStore(db)
        ingestor = Ingestor(store)
        rejected = [ingestor.ingest("accounts", form(account(1)))]
        ingestor.drain()
        rejected += [ingestor.ingest("sales_invoices", form(record)) for record in (
            invoice(1, 1), invoice(2, 1, InvoiceNumber=None), invoice(3, 1, InvoiceID=None))]
        ingestor.drain()
        found = (
            store.location("sales_invoices", DIVISION, guid(20_001)),
            store.location("sales_invoices", DIVISION, guid(20_002)),
            store.row("sales_invoices", DIVISION, guid(20_001)),
            store.dirty("invoice"), store.dirty("account"),
            [(r.stream, r.reason) for r in rejected if r is not None],
        )
        db.rollback()
        return found
    finally:
        db.close()


def test_json_text_and_dict_records_are_ingested_alike(database_url):
    as_text = ingested(database_url, lambda record: msgspec.Raw(json.dumps(record).encode()))
    as_dict = ingested(database_url, lambda record: record)
    assert as_text == as_dict
    first, without_number, row, invoices, accounts, rejected = as_text
    assert first == (guid(1), "24000001")  # the int InvoiceNumber is linked as text
    assert without_number == (guid(1), None)
    assert row is not None and row["InvoiceID"] == guid(20_001)
    assert invoices == [(DIVISION, guid(20_001)), (DIVISION, guid(20_002))]
    assert accounts == [(DIVISION, guid(1))]
    assert rejected == [("sales_invoices", "record without InvoiceID or Division")]
