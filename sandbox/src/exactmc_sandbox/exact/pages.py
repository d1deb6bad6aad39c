"""A page's rows rendered straight from their packed values (issue 9).

Building each row's whole dict (every date a datetime) only to pick the `$select`ed fields and
turn the dates back into `/Date(ms)/` was two thirds of a page's CPU. Here a row's stored values
are read once and only the selected fields decoded, dates from their epoch seconds. The answers
are those of `odata.render` over the store's rows (`store.invoice_rows` for the invoice feed):
rows held pickled, and a `$select` of nested lines, take that path itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from exactmc_sandbox.exact.dates import odata_date_seconds, to_odata_date
from exactmc_sandbox.exact.odata import render
from exactmc_sandbox.exact.packed import DATE_FIELDS, EPOCH, decoded, layout, unpack, values_of
from exactmc_sandbox.exact.store import DataStore, feed_stamp, invoice_rows

Rendered = dict[str, Any]
# Per layout: the selected fields it holds (name, position) without and with dates, and the
# position of its Timestamp (0: none; position 0 is the layout number).
Plan = tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...], int]


class Renderer:
    """Renders rows for one `$select` (`fields`), as `odata.render` does."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.direct = "SalesInvoiceLines" not in fields  # nested lines: the rows' own path
        self._plans: dict[int, Plan] = {}
        self._decoded: dict[bytes, str] = {}  # an invoice's GUIDs recur in each of its lines

    def plan(self, number: int) -> Plan:
        plan = self._plans.get(number)
        if plan is None:
            keys, _ = layout(number)
            at = {name: position for position, name in enumerate(keys, 1)}
            held = [name for name in self.fields if name in at]
            plan = self._plans[number] = (
                tuple((name, at[name]) for name in held if name not in DATE_FIELDS),
                tuple((name, at[name]) for name in held if name in DATE_FIELDS),
                at.get("Timestamp", 0))
        return plan

    def fill(self, out: Rendered, values: tuple[Any, ...]) -> None:
        """Set `out`'s selected fields that `values` holds."""
        plain, dates, _ = self.plan(values[0])
        known = self._decoded
        for name, at in plain:
            value = values[at]
            if type(value) is bytes:  # a GUID or shared value: decoded once a page
                text = known.get(value)
                if text is None:
                    text = known[value] = decoded(value)
                value = text
            out[name] = value
        for name, at in dates:
            when = values[at]
            out[name] = (None if when is None else odata_date_seconds(when)
                         if type(when) is int
                         else to_odata_date(EPOCH + timedelta(microseconds=when[0])))

    def row(self, values: tuple[Any, ...]) -> Rendered:
        out = dict.fromkeys(self.fields)
        self.fill(out, values)
        return out


def sync_page(store: DataStore, source: str, division: int, after: int,
              fields: tuple[str, ...]) -> Iterator[tuple[int, Rendered]]:
    """(Timestamp, rendered row) of a sync feed's rows above `after`, in Timestamp order, as
    `render` over `store.sync_rows` gives them."""
    renderer = Renderer(fields)
    if not renderer.direct:
        return ((row["Timestamp"], render(row, fields))
                for row in store.sync_rows(source, division, after))
    if source == "InvoiceFeed":
        return _invoice_feed(store, division, after, renderer)
    return _feed(store, source, division, after, renderer)


def keyed_page(store: DataStore, entity: str, division: int, after: str,
               fields: tuple[str, ...], conditions: list[Any] | None = None
               ) -> Iterator[tuple[str, Rendered]]:
    """(key, rendered row) of an entity's rows with a key above `after` that match all
    `conditions` ($filter terms), in key order. A filter still reads every row after `after`,
    but decodes only the fields it tests until one matches."""
    renderer = Renderer(fields)
    tested = _Tested(conditions or [])
    for key, packed in store.key_entries(entity, division, after):
        values = values_of(packed) if renderer.direct and tested.direct else None
        if values is None:
            row = unpack(packed)
            if tested.matches(row):
                yield key, render(row, fields)
        elif tested.matches_values(values):
            yield key, renderer.row(values)


class _Tested:
    """`$filter` terms tested against the fields they name, decoded as the row holds them."""

    def __init__(self, conditions: list[Any]) -> None:
        self.conditions = conditions
        self.names = tuple(dict.fromkeys(name for term in conditions for name in _names(term)))
        self.direct = "SalesInvoiceLines" not in self.names
        self._plans: dict[int, tuple[tuple[str, int], ...]] = {}

    def matches(self, row: dict[str, Any]) -> bool:
        return all(term.matches(row) for term in self.conditions)

    def matches_values(self, values: tuple[Any, ...]) -> bool:
        if not self.conditions:
            return True
        plan = self._plans.get(values[0])
        if plan is None:
            keys, _ = layout(values[0])
            at = {name: position for position, name in enumerate(keys, 1)}
            plan = self._plans[values[0]] = tuple((n, at[n]) for n in self.names if n in at)
        row = {}  # a field the row lacks reads as None, as from the whole row
        for name, at in plan:
            value = values[at]
            if name in DATE_FIELDS:  # as packed._row decodes it
                row[name] = (None if value is None else EPOCH + timedelta(seconds=value)
                             if type(value) is int else EPOCH + timedelta(microseconds=value[0]))
            else:
                row[name] = decoded(value)
        return self.matches(row)


def _names(term: Any) -> Iterator[str]:
    """The fields a $filter term (a Condition, or terms joined by and/or) tests."""
    inner = getattr(term, "terms", None)
    if inner is None:
        yield term.field
    else:
        for part in inner:
            yield from _names(part)


def _feed(store: DataStore, source: str, division: int, after: int, renderer: Renderer
          ) -> Iterator[tuple[int, Rendered]]:
    for stamp, packed in store.feed_entries(source, division, after):
        if packed is None:
            continue  # deleted since
        values = values_of(packed)
        if values is None:
            row = unpack(packed)
            if (row["Timestamp"] if source == "Deleted" else feed_stamp(source, row)) == stamp:
                yield stamp, render(row, renderer.fields)
            continue
        if values[renderer.plan(values[0])[2]] == stamp:  # else: a stale entry
            yield stamp, renderer.row(values)


def _invoice_feed(store: DataStore, division: int, after: int, renderer: Renderer
                  ) -> Iterator[tuple[int, Rendered]]:
    """Each invoice's header (LineNumber 0, ID = InvoiceID) then its lines over the header's
    values, as `store.invoice_rows`."""
    fields = renderer.fields
    for stamp, packed in store.feed_entries("InvoiceFeed", division, after):
        if packed is None:
            continue
        values = values_of(packed)
        keys, lines_at = layout(values[0]) if values is not None else ((), -1)
        if values is None or lines_at < 0 or type(values[lines_at + 1]) is not list:
            yield from _invoice_rows_of(unpack(packed), stamp, after, fields)
            continue
        lines = values[lines_at + 1]
        header_stamp = values[renderer.plan(values[0])[2]]
        last = lines[-1][renderer.plan(lines[-1][0])[2]] if lines else header_stamp
        if last != stamp:
            continue  # a stale entry
        header = renderer.row(values)
        if "ID" in header:
            header["ID"] = decoded(values[keys.index("InvoiceID") + 1])
        if "LineNumber" in header:
            header["LineNumber"] = 0
        if header_stamp > after:
            yield header_stamp, header
        for line in lines:
            line_stamp = line[renderer.plan(line[0])[2]]
            if line_stamp > after:
                row = dict(header)
                renderer.fill(row, line)
                yield line_stamp, row


def _invoice_rows_of(invoice: dict[str, Any], stamp: int, after: int, fields: tuple[str, ...]
                     ) -> Iterator[tuple[int, Rendered]]:
    if feed_stamp("SalesInvoices", invoice) != stamp:
        return
    for row in invoice_rows(invoice):
        if row["Timestamp"] > after:
            yield row["Timestamp"], render(row, fields)
