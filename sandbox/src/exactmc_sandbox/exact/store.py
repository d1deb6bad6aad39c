"""The simulator's in-memory data: rows per entity and division, row versions, deletions.

Rows are kept as plain dicts with Exact's field names and Python values (aware datetimes,
floats, bools). Each division's tables keep their rows in Timestamp order (a change moves the
row to the end), which is the order the sync feeds serve.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from exactmc_sandbox.exact.dates import SandboxClock, parse_iso, storable, to_iso
from exactmc_sandbox.exact.model import Company, Division
from exactmc_sandbox.exact.schema import (
    DELETED_ENTITY_TYPES,
    ENTITY_FIELDS,
    ENTITY_KEY,
    INVOICE_FEED_FIELDS,
    RECEIVABLE_OPEN,
    RECEIVABLE_PAID,
)
from exactmc_sandbox.exact.validation import InvalidInputError, prepare_create, prepare_update

Row = dict[str, Any]
ChangeListener = Callable[[dict[str, Any]], None]

# Timestamps restart here after a division move (see `move_division`).
MOVED_TIMESTAMP_BASE = 1_000
SANDBOX_USER_ID = "5a1d0b0e-0000-4000-8000-00000000e0e1"


class NotFoundError(KeyError):
    """No row with that key."""


class DataStore:
    """All rows, guarded by one re-entrant lock (every public method takes it)."""

    def __init__(self, clock: SandboxClock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.companies: dict[str, Company] = {}  # by region
        self.divisions: dict[int, Division] = {}
        self._tables: dict[str, dict[int, dict[str, Row]]] = {name: {} for name in ENTITY_FIELDS}
        self._deleted: dict[int, dict[str, Row]] = {}
        self._where: dict[tuple[str, str], int] = {}  # (entity, key) -> division
        self._listeners: list[ChangeListener] = []
        self._invoice_numbers: dict[int, int] = {}
        self._account_codes: dict[int, int] = {}

    # -- structure ----------------------------------------------------------------------------
    def add_company(self, company: Company, divisions: list[Division]) -> None:
        with self.lock:
            self.companies[company.region] = company
            for division in divisions:
                company.divisions.append(division.code)
                self.divisions[division.code] = division
                for table in self._tables.values():
                    table[division.code] = {}
                self._deleted[division.code] = {}
                self._invoice_numbers[division.code] = division.code * 100_000
                self._account_codes[division.code] = 0

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def division(self, code: int) -> Division:
        division = self.divisions.get(code)
        if division is None:
            raise NotFoundError(f"no division {code}")
        return division

    # -- reading ------------------------------------------------------------------------------
    def table(self, entity: str, division: int) -> dict[str, Row]:
        return self._tables[entity][division]

    def deleted_table(self, division: int) -> dict[str, Row]:
        """sync/Deleted rows. Known gap: Exact keeps them for two months; the simulator keeps
        them all (the seed's deletions reach back years), so a client must not take the
        sandbox's full history as proof that an old bookmark still sees every deletion."""
        return self._deleted[division]

    def get(self, entity: str, key: str) -> Row:
        with self.lock:
            division = self._where.get((entity, key.lower()))
            if division is None:
                raise NotFoundError(f"no {entity} with ID {key}")
            return self._tables[entity][division][key.lower()]

    def rows(self, entity: str, division: int | None = None) -> list[dict[str, Any]]:
        """Current rows as plain JSON (ISO dates), for the control API and tests."""
        with self.lock:
            codes = [division] if division is not None else sorted(self.divisions)
            return [plain(row) for code in codes for row in self._tables[entity][code].values()]

    def deleted_rows(self, division: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            codes = [division] if division is not None else sorted(self.divisions)
            return [plain(row) for code in codes for row in self._deleted[code].values()]

    def invoice_feed(self, division: int) -> Iterator[Row]:
        """sync/SalesInvoice/SalesInvoices rows: each invoice's header (LineNumber 0) then lines.

        Choice (unconfirmed): line rows repeat the header's fields, with the line's own values
        (amounts, Description, ...) taking precedence; header rows carry null line fields and
        their `ID` is the `InvoiceID`.
        """
        for invoice in self._tables["SalesInvoices"][division].values():
            header = {name: None for name in INVOICE_FEED_FIELDS}
            header.update({k: v for k, v in invoice.items() if k != "SalesInvoiceLines"})
            header["ID"] = invoice["InvoiceID"]
            header["LineNumber"] = 0
            yield header
            for line in invoice["SalesInvoiceLines"]:
                row = dict(header)
                row.update(line)
                yield row

    # -- writing ------------------------------------------------------------------------------
    def insert(self, entity: str, row: Row, *, stamp: bool = True) -> Row:
        """Store a complete row (seed data or a prepared create), assigning its Timestamp."""
        with self.lock:
            division = self.division(row["Division"])
            key = row[ENTITY_KEY[entity]] = row[ENTITY_KEY[entity]].lower()
            if stamp:
                self._stamp(entity, division, row)
            self._tables[entity][division.code][key] = row
            self._where[(entity, key)] = division.code
            return row

    def insert_deleted(self, row: Row) -> Row:
        with self.lock:
            division = self.division(row["Division"])
            row["Timestamp"] = division.take_timestamp()
            self._deleted[division.code][row["ID"]] = row
            return row

    def next_invoice_number(self, division: int) -> int:
        with self.lock:
            self._invoice_numbers[division] += 1
            return self._invoice_numbers[division]

    def next_account_code(self, division: int) -> str:
        with self.lock:
            self._account_codes[division] += 1
            # Exact's Account Code: 18 characters, left-padded with spaces.
            return str(self._account_codes[division]).rjust(18)

    def create(self, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            row = prepare_create(self, entity, fields, self.clock.now())
            self.insert(entity, row)
            if entity == "SalesInvoices":
                self._ensure_receivable(row)
            self._notify(entity, row, "Create")
            return plain(row)

    def update(self, entity: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            row = self.get(entity, key)
            prepare_update(self, entity, row, fields, self.clock.now())
            self._touch(entity, row)
            if entity == "SalesInvoices":
                self._ensure_receivable(row)
            self._notify(entity, row, "Update")
            return plain(row)

    def delete(self, entity: str, key: str) -> None:
        with self.lock:
            row = self.get(entity, key)
            key = row[ENTITY_KEY[entity]]
            division = row["Division"]
            del self._tables[entity][division][key]
            del self._where[(entity, key)]
            entity_type = DELETED_ENTITY_TYPES.get(entity)
            if entity_type is not None:
                self.insert_deleted({
                    "ID": str(uuid.uuid4()), "EntityKey": key, "EntityType": entity_type,
                    "DeletedBy": SANDBOX_USER_ID, "DeletedDate": self.clock.now(),
                    "Division": division,
                })
            self._notify(entity, row, "Delete")

    def move_division(self, code: int) -> dict[str, Any]:
        """A division moved to another database: DivisionMoveDate = now, row versions renumbered.

        Choice (unconfirmed): the new database numbers rows from a low base again, so a client
        that keeps its old Timestamp bookmark silently misses changes; only a full resync after
        noticing the new DivisionMoveDate is correct.
        """
        with self.lock:
            division = self.division(code)
            division.move_date = self.clock.now()
            division.next_timestamp = MOVED_TIMESTAMP_BASE
            for entity in ENTITY_FIELDS:
                for row in self._tables[entity][code].values():
                    self._stamp(entity, division, row)
            for row in self._deleted[code].values():
                row["Timestamp"] = division.take_timestamp()
            return {"Division": code, "DivisionMoveDate": to_iso(division.move_date)}

    def pay_receivable(self, key: str, paid_at: str | None = None) -> dict[str, Any]:
        with self.lock:
            row = self.get("Receivables", key)
            try:
                when = parse_iso(paid_at) if paid_at else self.clock.now()
            except (ValueError, OverflowError):
                raise InvalidInputError(f"paid_at is not an ISO-8601 date: {paid_at!r}") from None
            if not storable(when):  # it could never be answered as /Date(ms)/
                raise InvalidInputError(f"paid_at is outside the dates Exact keeps: {paid_at!r}")
            row.update(IsFullyPaid=True, LastPaymentDate=when, Status=RECEIVABLE_PAID)
            self._touch("Receivables", row)
            return plain(row)

    # -- internals ----------------------------------------------------------------------------
    def _stamp(self, entity: str, division: Division, row: Row) -> None:
        row["Timestamp"] = division.take_timestamp()
        if entity == "SalesInvoices":
            # Any change to an invoice gives every one of its rows a new Timestamp.
            for line in row["SalesInvoiceLines"]:
                line["Timestamp"] = division.take_timestamp()

    def _touch(self, entity: str, row: Row) -> None:
        """Bump Modified and Timestamp and move the row to the end of its (Timestamp) order."""
        division = self.division(row["Division"])
        row["Modified"] = self.clock.now()
        self._stamp(entity, division, row)
        table = self._tables[entity][division.code]
        key = row[ENTITY_KEY[entity]]
        table[key] = table.pop(key)

    def _ensure_receivable(self, invoice: Row) -> None:
        """A processed invoice (Status 50) has an open receivable, as in Exact."""
        if invoice["Status"] != 50:
            return
        table = self._tables["Receivables"][invoice["Division"]]
        if any(r["InvoiceNumber"] == invoice["InvoiceNumber"] for r in table.values()):
            return
        self.insert("Receivables", receivable_for(self, invoice, invoice["Modified"]))

    def _notify(self, entity: str, row: Row, action: str) -> None:
        event = {"entity": entity, "division": row["Division"], "action": action,
                 "key": row[ENTITY_KEY[entity]]}
        for listener in self._listeners:
            listener(event)


def receivable_for(store: DataStore, invoice: Row, when: datetime) -> Row:
    account = store.get("Accounts", invoice["InvoiceTo"])
    return {
        "ID": str(uuid.UUID(int=uuid.UUID(invoice["InvoiceID"]).int ^ 0xABC, version=4)),
        "Account": invoice["InvoiceTo"], "AccountCode": account["Code"],
        "AccountName": account["Name"], "InvoiceNumber": invoice["InvoiceNumber"],
        "EntryNumber": invoice["InvoiceNumber"], "AmountDC": invoice["AmountDC"],
        "TransactionAmountDC": invoice["AmountDC"], "Currency": invoice["Currency"],
        "IsFullyPaid": False, "LastPaymentDate": None, "Status": RECEIVABLE_OPEN,
        "Description": invoice["Description"], "InvoiceDate": invoice["InvoiceDate"],
        "DueDate": invoice["DueDate"], "Created": when, "Modified": when,
        "Division": invoice["Division"],
    }


def plain(row: Row) -> dict[str, Any]:
    """A JSON-ready copy: datetimes as ISO-8601 UTC strings."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            out[name] = to_iso(value)
        elif name == "SalesInvoiceLines":
            out[name] = [plain(line) for line in value]
        else:
            out[name] = value
    return out

