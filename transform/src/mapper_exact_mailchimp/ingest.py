"""Tap records → lookup-store rows, tombstones and dirty marks (no outputs computed here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .lookup_store import LookupStore
from .rejections import Rejection

logger = logging.getLogger(__name__)


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
# sync/Deleted EntityType → the stream whose row it deletes.
DELETED_ENTITY_STREAMS = {2: "accounts", 5: "contacts", 13: "sales_invoices", 9: "items"}


def link(value: object) -> str | None:
    return str(value).strip() if value not in (None, "") else None


class Ingestor:
    def __init__(self, store: LookupStore) -> None:
        self.store = store

    def ingest(self, stream: str, record: dict[str, Any]) -> Rejection | None:
        """Store one tap record; a record that cannot even be keyed comes back as a rejection."""
        if stream == "deletions":
            return self._ingest_deletion(record)
        shape = STREAMS.get(stream)
        if shape is None:
            return None  # not a stream this mapping uses (e.g. a newly added tap stream)
        row_id, division = link(record.get(shape.id_field)), record.get("Division")
        if row_id is None or not isinstance(division, int):
            return Rejection(stream, division if isinstance(division, int) else None,
                             str(row_id), f"record without {shape.id_field} or Division", record)
        if self.store.is_buried(stream, division, row_id):
            return None  # a stale resend of something Exact already deleted
        parent = link(record.get(shape.parent_field)) if shape.parent_field else None
        number = link(record.get(shape.number_field)) if shape.number_field else None
        if stream == "sales_invoice_lines" and self.store.is_buried(
                "sales_invoices", division, parent):
            return None
        old_parent, old_number = self.store.location(stream, division, row_id)
        self.store.upsert(stream, division, row_id, parent, number, record)
        self._mark_affected(stream, division, row_id, {parent, old_parent}, {number, old_number})
        return None

    def _mark_affected(
        self, stream: str, division: int, row_id: str, parents: set[str | None],
        numbers: set[str | None],
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
                mark("account", division, self.store.parent("sales_invoices", division,
                                                            invoice_id))
        elif stream == "cost_centers":
            for code in numbers:
                mark("cost_center", division, code)
        elif stream == "receivables":
            for number in numbers - {None}:
                for invoice_id in self.store.ids_by_number("sales_invoices", division, number):
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
