"""The simulator's in-memory data: rows per entity and division, row versions, deletions.

Rows are plain dicts with Exact's field names and Python values (aware datetimes, floats,
bools), held packed (`packed.py`): every read gives a fresh copy, so a change is made to a copy
and written back. Each division's tables keep their rows in Timestamp order (a change moves the
row to the end), which is the order the sync feeds serve. Indexes kept on every write
(`indexes.py`) let a page of any feed cost the page, not the table (issue 9).
"""

from __future__ import annotations

import threading
import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from exactmc_sandbox.exact.dates import SandboxClock, parse_iso, storable, to_iso
from exactmc_sandbox.exact.indexes import FeedIndex, SortedKeys
from exactmc_sandbox.exact.model import Company, Division
from exactmc_sandbox.exact.packed import PackedTable
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
        self._tables: dict[str, dict[int, PackedTable]] = {name: {} for name in ENTITY_FIELDS}
        self._deleted: dict[int, PackedTable] = {}
        self._listeners: list[ChangeListener] = []
        self._invoice_numbers: dict[int, int] = {}
        self._account_codes: dict[int, int] = {}
        # Indexes, per entity and division (see indexes.py).
        self._feeds: dict[str, dict[int, FeedIndex]] = {name: {} for name in ENTITY_FIELDS}
        self._deleted_feed: dict[int, FeedIndex] = {}
        self._keys: dict[str, dict[int, SortedKeys]] = {name: {} for name in ENTITY_FIELDS}
        self._invoice_versions: dict[int, int] = {}  # bumped on every invoice write
        # Line IDs in key order and the invoice holding each, built on read (not the lines:
        # as dicts they would cost more than all the packed rows).
        self._line_order: dict[int, tuple[int, list[str], list[str]]] = {}
        self._receivable_numbers: dict[int, Counter[int]] = {}  # InvoiceNumber -> receivables

    # -- structure ----------------------------------------------------------------------------
    def add_company(self, company: Company, divisions: list[Division]) -> None:
        with self.lock:
            self.companies[company.region] = company
            for division in divisions:
                company.divisions.append(division.code)
                self.divisions[division.code] = division
                for table in self._tables.values():
                    table[division.code] = PackedTable()
                for feeds in self._feeds.values():
                    feeds[division.code] = FeedIndex()
                for keys in self._keys.values():
                    keys[division.code] = SortedKeys()
                self._deleted[division.code] = PackedTable()
                self._deleted_feed[division.code] = FeedIndex()
                self._invoice_versions[division.code] = 0
                self._receivable_numbers[division.code] = Counter()
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
    def table(self, entity: str, division: int) -> PackedTable:
        return self._tables[entity][division]

    def deleted_table(self, division: int) -> PackedTable:
        """sync/Deleted rows. Known gap: Exact keeps them for two months; the simulator keeps
        them all (the seed's deletions reach back years), so a client must not take the
        sandbox's full history as proof that an old bookmark still sees every deletion."""
        return self._deleted[division]

    def get(self, entity: str, key: str) -> Row:
        with self.lock:
            key = key.lower()
            for table in self._tables[entity].values():  # a handful of divisions
                row = table.get(key)
                if row is not None:
                    return row
            raise NotFoundError(f"no {entity} with ID {key}")

    def rows(self, entity: str, division: int | None = None) -> list[dict[str, Any]]:
        """Current rows as plain JSON (ISO dates), for the control API and tests."""
        with self.lock:
            codes = [division] if division is not None else sorted(self.divisions)
            return [plain(row) for code in codes for row in self._tables[entity][code].values()]

    def deleted_rows(self, division: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            codes = [division] if division is not None else sorted(self.divisions)
            return [plain(row) for code in codes for row in self._deleted[code].values()]

    def invoice_feed(self, division: int, after: int = 0) -> Iterator[Row]:
        """sync/SalesInvoice/SalesInvoices rows with a Timestamp above `after`: each invoice's
        header (LineNumber 0) then lines.

        Choice (unconfirmed): line rows repeat the header's fields, with the line's own values
        (amounts, Description, ...) taking precedence; header rows carry null line fields and
        their `ID` is the `InvoiceID`.
        """
        for invoice in self._current("SalesInvoices", division, after):
            yield from (row for row in invoice_rows(invoice) if row["Timestamp"] > after)

    def sync_rows(self, source: str, division: int, after: int) -> Iterator[Row]:
        """A sync feed's rows with a Timestamp above `after`, in Timestamp order; `source` is an
        entity, "InvoiceFeed" or "Deleted". Costs the rows read, not the table."""
        if source == "InvoiceFeed":
            return self.invoice_feed(division, after)
        if source == "Deleted":
            table = self._deleted[division]
            return (row for stamp, key in self._deleted_feed[division].after(after)
                    if (row := table[key])["Timestamp"] == stamp)
        return self._current(source, division, after)

    def keyed_rows(self, source: str, division: int, after: str) -> Iterator[Row]:
        """Rows in key order with a key above `after`; `source` is an entity (key: its
        ENTITY_KEY) or "InvoiceLines" (key: the line's ID)."""
        if source == "InvoiceLines":
            keys, owners = self._lines_in_key_order(division)
            invoices = self._tables["SalesInvoices"][division]
            return (next(line for line in invoices[owners[at]]["SalesInvoiceLines"]
                         if line["ID"] == keys[at])
                    for at in range(bisect_right(keys, after), len(keys)))
        table = self._tables[source][division]
        return (table[key] for key in self._keys[source][division].after(after))

    def feed_entries(self, source: str, division: int, after: int
                     ) -> Iterator[tuple[int, bytes | None]]:
        """A sync feed's index entries above `after` as (stamp, the packed row now, None when
        gone), stale ones included (the reader compares the row's stamp): for `pages.py`."""
        if source == "Deleted":
            data, feed = self._deleted[division].data, self._deleted_feed[division]
        else:
            entity = "SalesInvoices" if source == "InvoiceFeed" else source
            data, feed = self._tables[entity][division].data, self._feeds[entity][division]
        return ((stamp, data.get(key)) for stamp, key in feed.after(after))

    def key_entries(self, entity: str, division: int, after: str
                    ) -> Iterator[tuple[str, bytes]]:
        """(key, packed row) in key order with a key above `after`: for `pages.py`."""
        data = self._tables[entity][division].data
        return ((key, data[key]) for key in self._keys[entity][division].after(after))

    def _current(self, entity: str, division: int, after: int) -> Iterator[Row]:
        """The rows whose feed stamp is above `after`, skipping the index's stale entries."""
        table = self._tables[entity][division]
        for stamp, key in self._feeds[entity][division].after(after):
            row = table.get(key)
            if row is not None and feed_stamp(entity, row) == stamp:
                yield row

    def _lines_in_key_order(self, division: int) -> tuple[list[str], list[str]]:
        """bulk/SalesInvoice/SalesInvoiceLines' order; rebuilt after an invoice write (rare
        on that endpoint, which no plugin pages through while writing)."""
        version = self._invoice_versions[division]
        cached = self._line_order.get(division)
        if cached is None or cached[0] != version:
            pairs = sorted((line["ID"], key)
                           for key, invoice in self._tables["SalesInvoices"][division].items()
                           for line in invoice["SalesInvoiceLines"])
            cached = (version, [line for line, _ in pairs], [key for _, key in pairs])
            self._line_order[division] = cached
        return cached[1], cached[2]

    # -- writing ------------------------------------------------------------------------------
    def insert(self, entity: str, row: Row, *, stamp: bool = True,
               compacted: bool = False) -> Row:
        """Store a complete row (seed data or a prepared create), assigning its Timestamp;
        returns `row` as stored (`compacted` is accepted for older callers: rows are always
        held packed now)."""
        with self.lock:
            division = self.division(row["Division"])
            key = row[ENTITY_KEY[entity]] = row[ENTITY_KEY[entity]].lower()
            table = self._tables[entity][division.code]
            if key in table:
                self._retire(entity, table[key])
                self._count_receivable(entity, table[key], -1)
            else:
                self._keys[entity][division.code].add(key)
            if stamp:
                self._stamp(entity, division, row)
            elif "Timestamp" in row:
                self._feeds[entity][division.code].add(feed_stamp(entity, row), key)
            table[key] = row
            self._count_receivable(entity, row, +1)
            return row

    def insert_deleted(self, row: Row) -> Row:
        with self.lock:
            division = self.division(row["Division"])
            row = dict(row)
            row["Timestamp"] = division.take_timestamp()
            self._deleted[division.code][row["ID"]] = row
            self._deleted_feed[division.code].add(row["Timestamp"], row["ID"])
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
            row = self.insert(entity, prepare_create(self, entity, fields, self.clock.now()))
            if entity == "SalesInvoices":
                self._ensure_receivable(row)
            self._notify(entity, row, "Create")
            return plain(row)

    def update(self, entity: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            row = self.get(entity, key)
            self._count_receivable(entity, row, -1)
            try:
                prepare_update(self, entity, row, fields, self.clock.now())
            finally:
                self._count_receivable(entity, row, +1)
            self._touch(entity, row)  # written back
            if entity == "SalesInvoices":
                self._ensure_receivable(row)
            self._notify(entity, row, "Update")
            return plain(row)

    def delete(self, entity: str, key: str) -> None:
        with self.lock:
            row = self.get(entity, key)
            key = row[ENTITY_KEY[entity]]
            division = row["Division"]
            self._retire(entity, row)
            self._count_receivable(entity, row, -1)
            self._keys[entity][division].remove(key)
            del self._tables[entity][division][key]
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
                self._feeds[entity][code] = FeedIndex()  # every stamp starts again
                table = self._tables[entity][code]
                for key, row in list(table.items()):
                    self._stamp(entity, division, row)
                    table[key] = row  # written back, in place
            self._deleted_feed[code] = FeedIndex()
            deleted = self._deleted[code]
            for key, row in list(deleted.items()):
                row["Timestamp"] = division.take_timestamp()
                deleted[key] = row
                self._deleted_feed[code].add(row["Timestamp"], row["ID"])
            self._invoice_versions[code] += 1
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
            self._touch("Receivables", row)  # written back
            return plain(row)

    # -- internals ----------------------------------------------------------------------------
    def _stamp(self, entity: str, division: Division, row: Row) -> None:
        row["Timestamp"] = division.take_timestamp()
        if entity == "SalesInvoices":
            # Any change to an invoice gives every one of its rows a new Timestamp.
            for line in row["SalesInvoiceLines"]:
                line["Timestamp"] = division.take_timestamp()
            self._invoice_versions[division.code] += 1
        self._feeds[entity][division.code].add(feed_stamp(entity, row), row[ENTITY_KEY[entity]])

    def _retire(self, entity: str, row: Row) -> None:
        """`row` is about to be stamped again or to go: its feed entry goes stale."""
        code = row["Division"]
        feed = self._feeds[entity][code]
        feed.retire()
        if feed.needs_compaction():
            table = self._tables[entity][code]
            own = row[ENTITY_KEY[entity]]
            feed.rebuild((feed_stamp(entity, r), k) for k, r in table.items()
                         if k != own and "Timestamp" in r)
        if entity == "SalesInvoices":
            self._invoice_versions[code] += 1

    def _count_receivable(self, entity: str, row: Row, change: int) -> None:
        if entity == "Receivables":
            self._receivable_numbers[row["Division"]][row.get("InvoiceNumber")] += change

    def _touch(self, entity: str, row: Row) -> None:
        """Bump Modified and Timestamp, write the row back and move it to the end of its
        (Timestamp) order."""
        division = self.division(row["Division"])
        row["Modified"] = self.clock.now()
        self._retire(entity, row)
        self._stamp(entity, division, row)
        self._tables[entity][division.code].move_to_end(row[ENTITY_KEY[entity]], row)

    def _ensure_receivable(self, invoice: Row) -> None:
        """A processed invoice (Status 50) has an open receivable, as in Exact."""
        if invoice["Status"] != 50:
            return
        if self._receivable_numbers[invoice["Division"]][invoice["InvoiceNumber"]] > 0:
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


def feed_stamp(entity: str, row: Row) -> int:
    """The Timestamp that places a row in its feed index: an invoice's last row's (its lines
    are stamped after its header, so its rows span header..last line, and no other invoice's
    rows fall inside that span)."""
    if entity == "SalesInvoices" and row["SalesInvoiceLines"]:
        return row["SalesInvoiceLines"][-1]["Timestamp"]
    return row["Timestamp"]


def invoice_rows(invoice: Row) -> Iterator[Row]:
    """An invoice as its feed rows: the header (LineNumber 0, ID = InvoiceID), then each line
    over a copy of the header."""
    header = dict.fromkeys(INVOICE_FEED_FIELDS)
    header.update({k: v for k, v in invoice.items() if k != "SalesInvoiceLines"})
    header["ID"] = invoice["InvoiceID"]
    header["LineNumber"] = 0
    yield header
    for line in invoice["SalesInvoiceLines"]:
        row = dict(header)
        row.update(line)
        yield row


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

