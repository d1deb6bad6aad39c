"""Tap records → lookup-store rows, tombstones and dirty marks (no outputs computed here).

Speed (issue 9): records are queued and written a batch at a time (`drain`): where the batch's
rows were (one `IN` query per 200 keys, not one query per record), what they dirty, then one
`executemany` of the upserts. A batch holds one stream and is drained before anything reads
the rows (a deletion, a flush, a commit), so every record sees the store exactly as if the
records before it had been written one by one. A record arrives as its JSON text
(`reader.py`) and is stored as such: only its link fields are decoded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from .lookup_store import LookupStore, plain_number
from .rejections import Rejection

logger = logging.getLogger(__name__)

# Records queued before they are written (the store's rows are read only after a drain).
INGEST_BATCH = 1000


@dataclass(frozen=True)
class StreamShape:
    """Which fields identify a row and link it to the rows it joins with."""

    id_field: str
    parent_field: str | None = None  # contacts→account, invoices→account, lines→invoice
    number_field: str | None = None  # invoice/receivable InvoiceNumber, cost center Code


STREAMS = {
    "accounts": StreamShape("ID"),
    "contacts": StreamShape("ID", parent_field="Account"),
    "sales_invoices": StreamShape("InvoiceID", parent_field="InvoiceTo",
                                  number_field="InvoiceNumber"),
    "sales_invoice_lines": StreamShape("ID", parent_field="InvoiceID"),
    "cost_centers": StreamShape("ID", number_field="Code"),
    "receivables": StreamShape("ID", parent_field="AccountId", number_field="InvoiceNumber"),
}
# The link a flush reads a stream's rows by, in order, when not by id: an account's contacts,
# an invoice's lines, the receivables of an invoice number.
READ_BY: dict[str, str] = {"contacts": "parent", "sales_invoice_lines": "parent",
                           "receivables": "number"}
# sync/Deleted EntityType → the stream whose row it deletes.
DELETED_ENTITY_STREAMS = {2: "accounts", 5: "contacts", 13: "sales_invoices", 9: "items"}


class _Links(msgspec.Struct):
    """The only fields of a record the ingest reads (the rest stays JSON text)."""

    ID: Any = None
    InvoiceID: Any = None
    Account: Any = None
    InvoiceTo: Any = None
    InvoiceNumber: Any = None
    Code: Any = None
    AccountId: Any = None
    Division: Any = None


# float_hook: a float-valued link reads as singer-sdk's parser reads it (a Decimal).
_LINKS = msgspec.json.Decoder(_Links, float_hook=Decimal)


def link(value: object) -> str | None:
    if value.__class__ is str:  # the usual case first (issue 9)
        return value.strip() if value else None  # type: ignore[attr-defined, no-any-return]
    return str(value).strip() if value not in (None, "") else None


class _Queued(NamedTuple):  # a tuple: a frozen dataclass costs ~1 µs more per record
    division: int
    row_id: str
    parent: str | None
    number: str | None
    data: str  # JSON text


class Ingestor:
    def __init__(self, store: LookupStore) -> None:
        self.store = store
        self._stream: str | None = None
        self._queue: list[_Queued] = []

    def ingest(self, stream: str, record: dict[str, Any] | msgspec.Raw) -> Rejection | None:
        """Queue one tap record (a dict, or its JSON text as `RawRecordReader` passes it); a
        record that cannot even be keyed comes back as a rejection."""
        if stream == "deletions":
            self.drain()
            return self._ingest_deletion(_as_dict(record))
        shape = STREAMS.get(stream)
        if shape is None:
            return None  # not a stream this mapping uses (e.g. a newly added tap stream)
        fields, data = _links_and_text(record)
        row_id, division = link(getattr(fields, shape.id_field)), fields.Division
        if row_id is None or not isinstance(division, int):
            return Rejection(stream, division if isinstance(division, int) else None,
                             str(row_id), f"record without {shape.id_field} or Division",
                             _as_dict(record))
        if self.store.is_buried(stream, division, row_id):
            return None  # a stale resend of something Exact already deleted
        parent = link(getattr(fields, shape.parent_field)) if shape.parent_field else None
        number = link(getattr(fields, shape.number_field)) if shape.number_field else None
        if stream == "sales_invoice_lines" and self.store.is_buried(
                "sales_invoices", division, parent):
            return None
        if stream != self._stream:
            self.drain()
            self._stream = stream
        self._queue.append(_Queued(division, row_id, parent, number, data))
        if len(self._queue) >= INGEST_BATCH:
            self.drain()
        return None

    def drain(self) -> None:
        """Write the queued records and their dirty marks (before anything reads the rows)."""
        queue, self._queue = self._queue, []
        if not queue:
            return
        stream = self._stream
        assert stream is not None
        known = self._locations(stream, queue)
        invoice_accounts = self._invoice_accounts(queue, known) \
            if stream == "sales_invoice_lines" else {}
        invoices_by_number = self._invoices_by_number(queue, known) \
            if stream == "receivables" else {}
        for queued in queue:
            key = (queued.division, queued.row_id)
            old_parent, old_number = known.get(key, (None, None))
            known[key] = (queued.parent, queued.number)  # what a later duplicate finds
            self._mark_affected(stream, queued.division, queued.row_id,
                                {queued.parent, old_parent}, {queued.number, old_number},
                                invoice_accounts, invoices_by_number)
        # Written in the order the flush reads them (rows are stored in write order): the
        # flush's key-ordered reads then find their next row on a page it just read (issue 9:
        # each batch a sorted run; ~5 % of the mapper's CPU at 30k and 100k, fewer page reads
        # of a store far larger than its cache). A key twice: only its last version is
        # written (the sort could put it first, and the older one would overwrite it).
        latest = {(q.division, q.row_id): q for q in queue}
        self.store.upsert_many([(stream, q.division, q.row_id, q.parent, q.number, q.data)
                                for q in sorted(latest.values(), key=_read_order(stream))])

    def _locations(self, stream: str, queue: list[_Queued],
                   ) -> dict[tuple[int, str], tuple[str | None, str | None]]:
        found: dict[tuple[int, str], tuple[str | None, str | None]] = {}
        for division in {q.division for q in queue}:
            ids = (q.row_id for q in queue if q.division == division)
            for row_id, location in self.store.locations(stream, division, ids).items():
                found[(division, row_id)] = location
        return found

    def _invoice_accounts(
        self, queue: list[_Queued], known: dict[tuple[int, str], tuple[str | None, str | None]],
    ) -> dict[tuple[int, str], str | None]:
        """The stored account (parent) of every invoice the lines name, now or before: no
        invoice row is written in a batch of lines, so these stay right for the whole batch."""
        found: dict[tuple[int, str], str | None] = {}
        for division in {q.division for q in queue}:
            ids = {invoice_id for q in queue if q.division == division
                   for invoice_id in (q.parent, known.get((division, q.row_id), (None,))[0])
                   if invoice_id}
            for invoice_id, (account_id, _) in self.store.locations(
                    "sales_invoices", division, ids).items():
                found[(division, invoice_id)] = account_id
        return found

    def _invoices_by_number(
        self, queue: list[_Queued], known: dict[tuple[int, str], tuple[str | None, str | None]],
    ) -> dict[tuple[int, str], list[str]]:
        found: dict[tuple[int, str], list[str]] = {}
        for division in {q.division for q in queue}:
            numbers = {number for q in queue if q.division == division
                       for number in (q.number, known.get((division, q.row_id), (None,) * 2)[1])
                       if number is not None}
            for number, ids in self.store.ids_by_numbers(
                    "sales_invoices", division, numbers).items():
                found[(division, number)] = ids
        return found

    def _mark_affected(
        self, stream: str, division: int, row_id: str, parents: set[str | None],
        numbers: set[str | None], invoice_accounts: dict[tuple[int, str], str | None],
        invoices_by_number: dict[tuple[int, str], list[str]],
    ) -> None:
        # Both the old and the new link: a contact moving accounts changes both accounts.
        mark = self.store.mark
        if stream == "accounts":
            mark("account", division, row_id)
        elif stream == "contacts":
            for account_id in parents:
                mark("account", division, account_id)
        elif stream == "sales_invoices":
            mark("invoice", division, row_id)
            for account_id in parents:
                mark("account", division, account_id)  # its members' cost-center tags
        elif stream == "sales_invoice_lines":
            for invoice_id in parents:
                mark("invoice", division, invoice_id)
                # The invoice's InvoiceTo is its stored parent: no need to decode the row.
                mark("account", division, invoice_accounts.get((division, invoice_id)))
        elif stream == "cost_centers":
            for code in numbers:
                mark("cost_center", division, code)
        elif stream == "receivables":
            for number in numbers - {None}:
                for invoice_id in invoices_by_number.get((division, number), ()):
                    mark("invoice", division, invoice_id)

    def _ingest_deletion(self, record: dict[str, Any]) -> Rejection | None:
        stream = DELETED_ENTITY_STREAMS.get(record.get("EntityType"))  # type: ignore[arg-type]
        key, division = link(record.get("EntityKey")), record.get("Division")
        if stream is None:
            return None  # an entity type this mapping has no output for
        if key is None or not isinstance(division, int):
            return Rejection("deletions", None, str(record.get("ID")),
                             "deletion without EntityKey or Division", record)
        deleted_at = record.get("DeletedDate")
        self.store.bury(stream, division, key, deleted_at)
        parent, _ = self.store.location(stream, division, key)
        if stream == "accounts":
            self.store.mark("account", division, key)
        elif stream == "contacts":
            self.store.mark("account", division, parent)
        elif stream == "sales_invoices":
            self.store.mark("invoice", division, key)
            self.store.mark("account", division, parent)
            for line_id in self.store.child_ids("sales_invoice_lines", division, key):
                self.store.delete("sales_invoice_lines", division, line_id)
        elif stream == "items":
            self.store.mark("item", division, key)
        self.store.delete(stream, division, key)
        return None


def _as_dict(record: dict[str, Any] | msgspec.Raw) -> dict[str, Any]:
    """The record as singer-sdk's parser makes it (floats as Decimal)."""
    if isinstance(record, msgspec.Raw):
        return json.loads(bytes(record), parse_float=Decimal)  # type: ignore[no-any-return]
    return record


def _links_and_text(record: dict[str, Any] | msgspec.Raw) -> tuple[_Links, str]:
    """The record's link fields (attributes: a C `getattr`, not a Python `.get` per field)
    and its JSON text for the store."""
    if record.__class__ is msgspec.Raw:
        try:
            return _LINKS.decode(record), bytes(record).decode()  # type: ignore[arg-type]
        except msgspec.MsgspecError:
            record = _as_dict(record)  # not an object (or a link msgspec cannot read)
    links = _Links(**{name: record.get(name) for name in _Links.__struct_fields__})  # type: ignore[union-attr]
    return links, json.dumps(record, default=plain_number)


def _read_order(stream: str) -> Callable[[_Queued], tuple[Any, ...]]:
    """The sort key of a stream's queued rows: the order the flush reads them in."""
    link_name = READ_BY.get(stream)
    if link_name is None:
        return lambda queued: (queued.division, queued.row_id)
    return lambda queued: (queued.division, getattr(queued, link_name) or "", queued.row_id)
