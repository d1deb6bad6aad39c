"""The catalogue of data endpoints and how each one pages through its rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice
from typing import Any

from exactmc_sandbox.exact import pages
from exactmc_sandbox.exact.indexes import take
from exactmc_sandbox.exact.odata import Condition, ODataError, parse_filter, parse_select
from exactmc_sandbox.exact.properties import (
    ACCOUNT_PROPERTIES,
    CONTACT_PROPERTIES,
    COSTCENTER_PROPERTIES,
    ITEM_PROPERTIES,
    RECEIVABLE_PROPERTIES,
    SALES_INVOICE_LINE_PROPERTIES,
    SALES_INVOICE_PROPERTIES,
    SYNC_DELETED_PROPERTIES,
    SYNC_SALES_INVOICE_PROPERTIES,
)
from exactmc_sandbox.exact.schema import (
    ACCOUNT_FIELDS,
    CONTACT_FIELDS,
    COSTCENTER_FIELDS,
    DELETED_FIELDS,
    INVOICE_FEED_FIELDS,
    INVOICE_FIELDS,
    INVOICE_LINE_FIELDS,
    ITEM_FIELDS,
    RECEIVABLE_FIELDS,
)
from exactmc_sandbox.exact.store import DataStore

SYNC_PAGE = BULK_PAGE = 1000
NORMAL_PAGE = 60
# Bulk endpoints filter only on these (Exact's documented bulk filters, plus the key).
BULK_FILTERS = {"Modified", "Account", "InvoiceNumber", "Status", "ID", "InvoiceID"}
_SKIP_GUID = re.compile(r"guid'([0-9a-fA-F-]{36})'")
_SKIP_TIMESTAMP = re.compile(r"(\d+)L?")


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "sync", "bulk" or "normal"
    source: str  # a store entity, or "InvoiceFeed", "InvoiceLines", "Deleted"
    fields: tuple[str, ...]  # what the simulator keeps (and answers without `$select`)
    documented: tuple[str, ...] = ()  # the entity's other properties: selectable, always null
    writable: bool = False  # POST/PUT/DELETE allowed (normal endpoints of store entities)

    @property
    def selectable(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.fields, *self.documented)))

    @property
    def key(self) -> str:
        return "InvoiceID" if self.source == "SalesInvoices" else "ID"

    @property
    def page_size(self) -> int:
        return NORMAL_PAGE if self.kind == "normal" else SYNC_PAGE

    def filterable(self) -> set[str]:
        if self.kind == "sync":
            return {"Timestamp"}
        if self.kind == "bulk":
            return BULK_FILTERS & set(self.fields)
        return set(self.fields)


def _timestamped(fields: tuple[str, ...]) -> tuple[str, ...]:
    return (*fields, "Timestamp")


ENDPOINTS: dict[str, Endpoint] = {
    "sync/CRM/Accounts": Endpoint("sync", "Accounts", _timestamped(ACCOUNT_FIELDS),
                                  _timestamped(ACCOUNT_PROPERTIES)),
    "sync/CRM/Contacts": Endpoint("sync", "Contacts", _timestamped(CONTACT_FIELDS),
                                  _timestamped(CONTACT_PROPERTIES)),
    "sync/SalesInvoice/SalesInvoices": Endpoint("sync", "InvoiceFeed", INVOICE_FEED_FIELDS,
                                                SYNC_SALES_INVOICE_PROPERTIES),
    "sync/Deleted": Endpoint("sync", "Deleted", DELETED_FIELDS, SYNC_DELETED_PROPERTIES),
    "bulk/CRM/Accounts": Endpoint("bulk", "Accounts", ACCOUNT_FIELDS, ACCOUNT_PROPERTIES),
    "bulk/CRM/Contacts": Endpoint("bulk", "Contacts", CONTACT_FIELDS, CONTACT_PROPERTIES),
    "bulk/SalesInvoice/SalesInvoices": Endpoint("bulk", "SalesInvoices", INVOICE_FIELDS,
                                                SALES_INVOICE_PROPERTIES),
    "bulk/SalesInvoice/SalesInvoiceLines": Endpoint("bulk", "InvoiceLines", INVOICE_LINE_FIELDS,
                                                    SALES_INVOICE_LINE_PROPERTIES),
    "bulk/Cashflow/Receivables": Endpoint("bulk", "Receivables", RECEIVABLE_FIELDS,
                                          RECEIVABLE_PROPERTIES),
    "crm/Accounts": Endpoint("normal", "Accounts", ACCOUNT_FIELDS, ACCOUNT_PROPERTIES,
                             writable=True),
    "crm/Contacts": Endpoint("normal", "Contacts", CONTACT_FIELDS, CONTACT_PROPERTIES,
                             writable=True),
    "salesinvoice/SalesInvoices": Endpoint("normal", "SalesInvoices", INVOICE_FIELDS,
                                           SALES_INVOICE_PROPERTIES, writable=True),
    "hrm/Costcenters": Endpoint("normal", "Costcenters", COSTCENTER_FIELDS,
                                COSTCENTER_PROPERTIES, writable=True),
    "logistics/Items": Endpoint("normal", "Items", ITEM_FIELDS, ITEM_PROPERTIES, writable=True),
}


@dataclass
class Page:
    rows: list[Any]  # dicts, or JSON texts (`read_page(as_json=True)`)
    skiptoken: str | None  # set when more rows follow


def read_page(store: DataStore, endpoint: Endpoint, division: int, args: dict[str, str],
              top: int | None = None, as_json: bool = False) -> Page:
    """One page of `endpoint` for the query `args` ($select, $filter, $skiptoken); with
    `as_json` its rows are each row's `json.dumps(..., ensure_ascii=False)` text."""
    fields = parse_select(args.get("$select"), endpoint.selectable,
                          required=endpoint.kind != "normal", default=endpoint.fields)
    conditions = parse_filter(args.get("$filter"), endpoint.filterable())
    size = min(endpoint.page_size, top) if top else endpoint.page_size
    with store.lock:
        if endpoint.kind == "sync":
            rendered, last = _sync_rows(store, endpoint, division, conditions, args, size,
                                        fields, as_json)
            token = f"{last}L" if last is not None else None
        else:
            rendered, last = _keyed_rows(store, endpoint, division, conditions, args, size,
                                         fields, as_json)
            token = f"guid'{last}'" if last is not None else None
    return Page(rendered, None if top else token)


def _sync_rows(store: DataStore, endpoint: Endpoint, division: int,
               conditions: list[Any], args: dict[str, str], size: int,
               fields: tuple[str, ...], as_json: bool = False) -> tuple[list[Any], int | None]:
    """Rows in Timestamp order after the bookmark; the sync API filters on nothing else."""
    after = 0
    for condition in conditions:
        if (not isinstance(condition, Condition) or condition.op != "gt"
                or not isinstance(condition.value, int)):
            raise ODataError(400, "Only 'Timestamp gt <number>' is allowed on sync endpoints")
        after = max(after, condition.value)
    skip = args.get("$skiptoken")
    if skip:
        m = _SKIP_TIMESTAMP.fullmatch(skip)
        if not m:
            raise ODataError(400, f"Invalid $skiptoken: {skip}")
        after = max(after, int(m.group(1)))
    rows = list(islice(pages.sync_page(store, endpoint.source, division, after, fields,
                                       as_json), size + 1))
    return [row for _, row in rows[:size]], (rows[size - 1][0] if len(rows) > size else None)


def _keyed_rows(store: DataStore, endpoint: Endpoint, division: int,
                conditions: list[Any], args: dict[str, str], size: int,
                fields: tuple[str, ...], as_json: bool = False) -> tuple[list[Any], str | None]:
    """Rows in key (ID) order after the $skiptoken key, as Exact pages its other endpoints."""
    key = endpoint.key
    skip = args.get("$skiptoken")
    after = ""
    if skip:
        m = _SKIP_GUID.fullmatch(skip)
        if not m:
            raise ODataError(400, f"Invalid $skiptoken: {skip}")
        after = m.group(1).lower()
    if endpoint.source != "InvoiceLines":  # straight from the packed rows
        keyed = list(islice(pages.keyed_page(store, endpoint.source, division, after, fields,
                                             conditions, as_json), size + 1))
        return [row for _, row in keyed[:size]], (keyed[size - 1][0] if len(keyed) > size
                                                  else None)
    matching = take(store.keyed_rows(endpoint.source, division, after), size + 1,
                    lambda r: all(c.matches(r) for c in conditions))
    more = len(matching) > size
    rows = matching[:size]
    renderer = pages.Renderer(fields, as_json)
    return [renderer.whole(row) for row in rows], (rows[-1][key] if more else None)
