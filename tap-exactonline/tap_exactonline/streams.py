"""The streams: Exact's own field names, one partition (and bookmark) per division."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th

from tap_exactonline.client import ExactStream
from tap_exactonline.dates import modified_filter, parse_iso, to_iso_utc
from tap_exactonline.pagination import ODataNextPaginator

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

LOGGER = logging.getLogger("tap_exactonline.streams")

MOVE_DATE_KEY = "division_move_date"  # kept in each partition's state
RESUME_KEY = "resume"  # a Modified read stopped after a page: where it goes on, and since when

String, Integer, Number, Boolean, DateTime = (
    th.StringType, th.IntegerType, th.NumberType, th.BooleanType, th.DateTimeType,
)


def _schema(*fields: tuple[str, type[th.JSONTypeHelper]]) -> dict[str, Any]:
    return th.PropertiesList(*(th.Property(name, kind) for name, kind in fields)).to_dict()


class IncrementalExactStream(ExactStream):
    """Partition bookkeeping shared by both kinds of incremental stream."""

    def start_partition(self, context: Context) -> dict[str, Any]:
        """This partition's state, reset when its division moved since the last run.

        After a division move Exact renumbers row versions, so old Timestamp bookmarks are
        void: the only safe answer is a full resync of that division.
        """
        state = self.get_context_state(context)
        current = self.tap.division_move_dates.get(context["division"], "unknown")
        if current == "unknown":  # system/Divisions could not tell: keep what we have
            return state
        if MOVE_DATE_KEY in state and state[MOVE_DATE_KEY] != current:
            LOGGER.warning(
                "Division %s moved (DivisionMoveDate %s): full resync of '%s'.",
                context["division"], current, self.name,
            )
            for key in ("replication_key_value", "progress_markers", "replication_key_signpost",
                        RESUME_KEY):
                state.pop(key, None)
            state["starting_replication_value"] = None
        state[MOVE_DATE_KEY] = current
        return state


class SyncStream(IncrementalExactStream):
    """A `sync/` endpoint: 1,000 rows a page, ordered by the `Timestamp` row version."""

    replication_key = "Timestamp"
    is_sorted = True

    def sync_start(self, context: Context) -> int:
        value = self.start_partition(context).get("replication_key_value")
        return int(value) if value is not None else 1  # Exact: start with 1

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        params["$filter"] = f"Timestamp gt {self.feed_start(context or {})}L"
        return params

    def feed_start(self, context: Context) -> int:
        return self.sync_start(context)


class ModifiedStream(IncrementalExactStream):
    """An endpoint without a sync feed: incremental on `Modified` (Amsterdam local time)."""

    replication_key = "Modified"
    is_sorted = False  # no order is promised on these endpoints

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params = super().get_url_params(context, next_page_token)
        state = self.start_partition(context or {})
        since = state.get("replication_key_value") or self.config.get("start_date")
        if since:
            overlap = float(self.config.get("modified_overlap_seconds", 300))
            params["$filter"] = modified_filter(parse_iso(str(since)), overlap)
        return params

    def get_new_paginator(self) -> ODataNextPaginator:
        # A read an earlier run stopped after a page goes on from there (same $filter).
        self._paginator = ODataNextPaginator(self._resume_url)
        return self._paginator

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        state = self.start_partition(context or {})
        resume = state.get(RESUME_KEY) or {}
        self._resume_url: str | None = resume.get("next")
        self._paginator = None
        self._pass_started = resume.get("started") or to_iso_utc(datetime.now(timezone.utc))
        yield from super().get_records(context)

    def on_daily_limit(self, context: Context | None) -> None:
        # Rows come unordered: the highest Modified seen so far is no bookmark yet. Keep where
        # the read stopped and that highest value; the read resumes there in the next run.
        state = self.get_context_state(context)
        seen = (state.pop("progress_markers", None) or {}).get("replication_key_value")
        paginator: ODataNextPaginator | None = self._paginator
        next_page = paginator.current_value if paginator is not None else None
        if next_page is None:  # not even the first page came: nothing new to keep
            return
        previous = state.get(RESUME_KEY) or {}
        state[RESUME_KEY] = {
            "next": next_page.geturl(),
            "highest": _later(previous.get("highest"), seen),
            "started": self._pass_started,
        }

    def on_partition_complete(self, context: Context | None) -> None:
        state = self.get_context_state(context)
        resume = state.pop(RESUME_KEY, None)
        if not resume:
            return
        # A read spread over several runs: its bookmark is the highest Modified of all its
        # pages, but never past its start, so rows changed behind the read are read again.
        markers = state.get("progress_markers") or {}
        highest = _later(resume.get("highest"), markers.get("replication_key_value"))
        if highest is not None:  # no row seen at all: keep the bookmark there was
            bookmark = _earlier(highest, resume.get("started"))
            state["progress_markers"] = {
                **markers, "replication_key": self.replication_key,
                "replication_key_value": bookmark,
            }


def _later(a: str | None, b: str | None) -> str | None:
    return max((v for v in (a, b) if v), key=lambda v: parse_iso(str(v)), default=None)


def _earlier(a: str | None, b: str | None) -> str | None:
    return min((v for v in (a, b) if v), key=lambda v: parse_iso(str(v)), default=None)


# -- CRM ------------------------------------------------------------------------------------
ACCOUNT_FIELDS = (
    ("ID", String), ("Code", String), ("Name", String), ("Email", String), ("Phone", String),
    ("Website", String), ("AddressLine1", String), ("AddressLine2", String),
    ("AddressLine3", String), ("City", String), ("Postcode", String), ("State", String),
    ("Country", String), ("CountryName", String), ("Language", String), ("Status", String),
    ("Blocked", Boolean), ("IsSales", Boolean), ("Type", String), ("VATNumber", String),
    ("Created", DateTime), ("Modified", DateTime), ("Division", Integer), ("Timestamp", Integer),
)


class AccountsStream(SyncStream):
    name = "accounts"
    path = "/{division}/sync/CRM/Accounts"
    primary_keys = ("ID",)
    select_fields = tuple(name for name, _ in ACCOUNT_FIELDS)
    schema = _schema(*ACCOUNT_FIELDS)

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict | None:
        record = super().post_process(row, context)
        if record and isinstance(record.get("Code"), str):
            record["Code"] = record["Code"].strip()  # 18 characters, left-padded with spaces
        return record


CONTACT_FIELDS = (
    ("ID", String), ("Account", String), ("AccountName", String), ("FirstName", String),
    ("MiddleName", String), ("LastName", String), ("FullName", String), ("Email", String),
    ("BusinessEmail", String), ("Phone", String), ("Mobile", String),
    ("IsMailingExcluded", Boolean), ("IsMainContact", Boolean), ("Language", String),
    ("Created", DateTime), ("Modified", DateTime), ("Division", Integer), ("Timestamp", Integer),
)


class ContactsStream(SyncStream):
    name = "contacts"
    path = "/{division}/sync/CRM/Contacts"
    primary_keys = ("ID",)
    select_fields = tuple(name for name, _ in CONTACT_FIELDS)
    schema = _schema(*CONTACT_FIELDS)


# -- Sales invoices: one feed, two streams --------------------------------------------------
INVOICE_FIELDS = (
    ("InvoiceID", String), ("InvoiceNumber", Integer), ("InvoiceTo", String),
    ("InvoiceToName", String), ("OrderedBy", String), ("OrderedByName", String),
    ("DeliverTo", String), ("AmountDC", Number), ("AmountFC", Number),
    ("AmountFCExclVat", Number), ("VATAmountFC", Number), ("VATAmountDC", Number),
    ("Currency", String), ("InvoiceDate", DateTime), ("DueDate", DateTime), ("Status", Integer),
    ("Type", Integer), ("Description", String), ("YourRef", String), ("Created", DateTime),
    ("Modified", DateTime), ("Division", Integer), ("Timestamp", Integer),
)
INVOICE_LINE_FIELDS = (
    ("ID", String), ("InvoiceID", String), ("LineNumber", Integer), ("Item", String),
    ("ItemCode", String), ("ItemDescription", String), ("Quantity", Number),
    ("UnitPrice", Number), ("AmountFC", Number), ("AmountDC", Number), ("VATAmountFC", Number),
    ("CostCenter", String), ("CostCenterDescription", String), ("Description", String),
    ("Division", Integer), ("Timestamp", Integer),
)
INVOICE_FEED_SELECT = tuple(
    dict.fromkeys(name for name, _ in (*INVOICE_LINE_FIELDS, *INVOICE_FIELDS))
)


class InvoiceFeedStream(SyncStream):
    """`sync/SalesInvoice/SalesInvoices`: headers (LineNumber 0) and lines (≥ 1) in one feed.

    sales_invoices and sales_invoice_lines both come from it. Whichever of the two syncs a
    division first reads the feed once, emits its own rows and sets the sibling's rows aside
    (when the sibling is selected); the sibling then reads those instead of calling again.
    """

    path = "/{division}/sync/SalesInvoice/SalesInvoices"
    select_fields = INVOICE_FEED_SELECT
    share_key = "sales_invoice_feed"  # type: ignore[assignment]  # one feed, one budget share
    own_fields: ClassVar[tuple[str, ...]] = ()
    sibling_name: ClassVar[str] = ""

    @staticmethod
    def is_header(row: dict[str, Any]) -> bool:
        return row.get("LineNumber") in (0, None)

    def owns(self, row: dict[str, Any]) -> bool:
        raise NotImplementedError

    @property
    def sibling(self) -> InvoiceFeedStream | None:
        stream = self.tap.streams.get(self.sibling_name)
        return stream if isinstance(stream, InvoiceFeedStream) and stream.selected else None

    def feed_start(self, context: Context) -> int:
        # Rows for both streams come from one read: start at the older of the two bookmarks.
        own = self.sync_start(context)
        sibling = self.sibling
        return min(own, sibling.sync_start(context)) if sibling else own

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        context = context or {}
        if not self.in_scope(context):
            return  # before the spool: an out-of-scope read must not leave the sibling empty
        division = context["division"]
        own_start = self.sync_start(context)
        spool = self.tap.line_spool
        if spool.has(self.name, division):
            yield from spool.read(self.name, division)  # already fetched by the sibling
            return
        sibling = self.sibling
        sibling_start = sibling.sync_start(context) if sibling else 0
        writer = spool.writer(sibling.name, division) if sibling else None
        try:
            for row in super().get_records(context):
                if self.owns(row):
                    if row["Timestamp"] > own_start:
                        yield row
                elif writer is not None and row["Timestamp"] > sibling_start:
                    writer.write(row)
        finally:
            if writer is not None:
                writer.close()

    fill_missing = True  # every field of its own, whichever of the two the feed row is


class SalesInvoicesStream(InvoiceFeedStream):
    """Invoice headers: the feed's rows with LineNumber 0."""

    name = "sales_invoices"
    sibling_name = "sales_invoice_lines"
    primary_keys = ("InvoiceID",)
    schema = _schema(*INVOICE_FIELDS)
    own_fields = tuple(name for name, _ in INVOICE_FIELDS)

    def owns(self, row: dict[str, Any]) -> bool:
        return self.is_header(row)


class SalesInvoiceLinesStream(InvoiceFeedStream):
    """Invoice lines: the feed's rows with LineNumber ≥ 1 (each carries its InvoiceID)."""

    name = "sales_invoice_lines"
    sibling_name = "sales_invoices"
    primary_keys = ("ID",)
    schema = _schema(*INVOICE_LINE_FIELDS)
    own_fields = tuple(name for name, _ in INVOICE_LINE_FIELDS)

    def owns(self, row: dict[str, Any]) -> bool:
        return not self.is_header(row)


# -- Other entities -------------------------------------------------------------------------
COSTCENTER_FIELDS = (
    ("ID", String), ("Code", String), ("Description", String), ("Active", Boolean),
    ("Created", DateTime), ("Modified", DateTime), ("Division", Integer),
)


class CostCentersStream(ModifiedStream):
    # Exact has no sync or bulk endpoint for cost centers: the 60-row one is all there is.
    name = "cost_centers"
    path = "/{division}/hrm/Costcenters"
    primary_keys = ("ID",)
    select_fields = tuple(name for name, _ in COSTCENTER_FIELDS)
    schema = _schema(*COSTCENTER_FIELDS)


RECEIVABLE_FIELDS = (
    ("ID", String), ("AccountId", String), ("AccountCode", String), ("AccountName", String),
    ("InvoiceNumber", Integer), ("EntryNumber", Integer), ("AmountDC", Number),
    ("TransactionAmountDC", Number), ("Currency", String), ("IsFullyPaid", Boolean),
    ("LastPaymentDate", DateTime), ("Status", Integer), ("Description", String),
    ("InvoiceDate", DateTime), ("DueDate", DateTime), ("Modified", DateTime),
    ("Division", Integer),
)


class ReceivablesStream(ModifiedStream):
    """Payment status: an invoice is paid when its receivable is fully paid."""

    name = "receivables"
    path = "/{division}/bulk/Cashflow/Receivables"
    primary_keys = ("ID",)
    select_fields = tuple(
        "Account" if name == "AccountId" else name for name, _ in RECEIVABLE_FIELDS
    )
    schema = _schema(*RECEIVABLE_FIELDS)

    renames: ClassVar[dict[str, str]] = {"Account": "AccountId"}  # contract name

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict | None:
        record = super().post_process(row, context)
        if record is not None:
            record.setdefault("AccountId", None)
            record["AccountCode"] = (record.get("AccountCode") or "").strip() or None
        return record


DELETED_FIELDS = (
    ("ID", String), ("EntityKey", String), ("EntityType", Integer), ("DeletedBy", String),
    ("DeletedDate", DateTime), ("Division", Integer), ("Timestamp", Integer),
)


class DeletionsStream(SyncStream):
    """`sync/Deleted`: EntityType 2 accounts, 5 contacts, 13 sales invoices, 9 items."""

    name = "deletions"
    path = "/{division}/sync/Deleted"
    primary_keys = ("ID",)
    select_fields = tuple(name for name, _ in DELETED_FIELDS)
    schema = _schema(*DELETED_FIELDS)


STREAM_TYPES: tuple[type[ExactStream], ...] = (
    AccountsStream,
    ContactsStream,
    SalesInvoicesStream,
    SalesInvoiceLinesStream,
    CostCentersStream,
    ReceivablesStream,
    DeletionsStream,
)
