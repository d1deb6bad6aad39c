"""A page's rows rendered straight from their packed values (issue 9).

Building each row's whole dict (every date a datetime) only to pick the `$select`ed fields and
turn the dates back into `/Date(ms)/` was two thirds of a page's CPU. Here a row's stored values
are read once and only the selected fields decoded, dates from their epoch seconds. The answers
are those of `odata.render` over the store's rows (`store.invoice_rows` for the invoice feed):
rows held pickled, and a `$select` of nested lines, take that path itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from exactmc_sandbox.exact.dates import odata_date_seconds, to_odata_date
from exactmc_sandbox.exact.odata import render
from exactmc_sandbox.exact.packed import DATE_FIELDS, EPOCH, decoded, layout, unpack, values_of
from exactmc_sandbox.exact.store import DataStore, feed_stamp, invoice_rows

Rendered = Any  # a row's dict, or its JSON text (`Renderer(as_json=True)`)
# Per layout: the selected fields it holds (slot, position) without and with dates, and the
# position of its Timestamp (0: none; position 0 is the layout number).
Plan = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int]
_encode_string = json.encoder.encode_basestring  # C: json.dumps(text, ensure_ascii=False)


def json_value(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False)`, without its per-call set-up for the common
    types (the same text: json writes ints and finite floats with their repr)."""
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, ensure_ascii=False)


_float_repr, _int_repr = float.__repr__, int.__repr__


def _json_bytes(value: bytes) -> str:
    """The JSON text of a stored GUID (its 16 bytes) or shared value (its number)."""
    if len(value) == 16:
        h = value.hex()
        return f'"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"'
    return json_value(decoded(value))


class Renderer:
    """Renders rows for one `$select` (`fields`), as `odata.render` does; with `as_json` as
    the row's `json.dumps(..., ensure_ascii=False)` text instead, written straight from the
    packed values (issue 9: encoding the page's dicts was a third of a page's CPU).

    A row is built in slots (one per field, in `fields` order), so an invoice's header slots
    are encoded once and copied for each of its lines."""

    def __init__(self, fields: tuple[str, ...], as_json: bool = False) -> None:
        self.fields = fields
        self.as_json = as_json
        self.direct = "SalesInvoiceLines" not in fields  # nested lines: the rows' own path
        self.slot = {name: at for at, name in enumerate(fields)}
        self.empty: list[Any] = ["null" if as_json else None] * len(fields)
        # '{"ID": %s, "Name": %s}': the keys as json.dumps writes them (separators ", ", ": ")
        self._format = "{%s}" % ", ".join(  # noqa: UP031 (a template of templates)
            _encode_string(name).replace("%", "%%") + ": %s" for name in fields)
        self._plans: dict[int, Plan] = {}
        self._decoded: dict[bytes, str] = {}  # an invoice's GUIDs recur in each of its lines
        self._dates: dict[int, str] = {}  # epoch seconds -> JSON text

    def plan(self, number: int) -> Plan:
        plan = self._plans.get(number)
        if plan is None:
            keys, _ = layout(number)
            at = {name: position for position, name in enumerate(keys, 1)}
            held = [name for name in self.fields if name in at]
            slot = self.slot
            plan = self._plans[number] = (
                tuple((slot[name], at[name]) for name in held if name not in DATE_FIELDS),
                tuple((slot[name], at[name]) for name in held if name in DATE_FIELDS),
                at.get("Timestamp", 0))
        return plan

    def fill(self, out: list[Any], values: tuple[Any, ...]) -> None:
        """Set the slots of `out` for the selected fields that `values` holds."""
        plain, dates, _ = self.plan(values[0])
        known = self._decoded
        if self.as_json:
            for slot, at in plain:  # json_value inlined for the common types: hot
                value = values[at]
                kind = type(value)
                if kind is bytes:  # a GUID or shared value: encoded once a page
                    text = known.get(value)
                    if text is None:
                        text = known[value] = _json_bytes(value)
                    out[slot] = text
                elif kind is str:
                    out[slot] = _encode_string(value)
                elif value is None:
                    out[slot] = "null"
                elif kind is float:
                    text = _float_repr(value)
                    out[slot] = text if text[-1] not in "nf" else json_value(value)  # nan, inf
                elif kind is int:
                    out[slot] = _int_repr(value)
                elif kind is bool:
                    out[slot] = "true" if value else "false"
                else:
                    out[slot] = json_value(value)
            dated = self._dates
            for slot, at in dates:
                when = values[at]
                if type(when) is int:  # whole seconds: rows share days and times
                    text = dated.get(when)
                    if text is None:
                        text = dated[when] = f'"{odata_date_seconds(when)}"'
                    out[slot] = text
                else:
                    out[slot] = "null" if when is None else json_value(to_odata_date(
                        EPOCH + timedelta(microseconds=when[0])))
            return
        for slot, at in plain:
            value = values[at]
            if type(value) is bytes:  # a GUID or shared value: decoded once a page
                text = known.get(value)
                if text is None:
                    text = known[value] = decoded(value)
                value = text
            out[slot] = value
        for slot, at in dates:
            when = values[at]
            out[slot] = (None if when is None else odata_date_seconds(when)
                         if type(when) is int
                         else to_odata_date(EPOCH + timedelta(microseconds=when[0])))

    def set(self, out: list[Any], name: str, value: Any) -> None:
        """Set one selected field's slot (no-op when not selected)."""
        at = self.slot.get(name)
        if at is not None:
            out[at] = json_value(value) if self.as_json else value

    def finish(self, out: list[Any]) -> Rendered:
        if self.as_json:
            return self._format % tuple(out)
        return dict(zip(self.fields, out, strict=True))

    def row(self, values: tuple[Any, ...]) -> Rendered:
        out = list(self.empty)
        self.fill(out, values)
        return self.finish(out)

    def whole(self, row: dict[str, Any]) -> Rendered:
        """A whole row (read the slow way: held pickled, or with nested lines) rendered."""
        rendered = render(row, self.fields)
        return json.dumps(rendered, ensure_ascii=False) if self.as_json else rendered


def sync_page(store: DataStore, source: str, division: int, after: int,
              fields: tuple[str, ...], as_json: bool = False
              ) -> Iterator[tuple[int, Rendered]]:
    """(Timestamp, rendered row) of a sync feed's rows above `after`, in Timestamp order, as
    `render` over `store.sync_rows` gives them (`as_json`: as JSON text)."""
    renderer = Renderer(fields, as_json)
    if not renderer.direct:
        return ((row["Timestamp"], renderer.whole(row))
                for row in store.sync_rows(source, division, after))
    if source == "InvoiceFeed":
        return _invoice_feed(store, division, after, renderer)
    return _feed(store, source, division, after, renderer)


def keyed_page(store: DataStore, entity: str, division: int, after: str,
               fields: tuple[str, ...], conditions: list[Any] | None = None,
               as_json: bool = False) -> Iterator[tuple[str, Rendered]]:
    """(key, rendered row) of an entity's rows with a key above `after` that match all
    `conditions` ($filter terms), in key order. A filter still reads every row after `after`,
    but decodes only the fields it tests until one matches."""
    renderer = Renderer(fields, as_json)
    tested = _Tested(conditions or [])
    for key, packed in store.key_entries(entity, division, after):
        values = values_of(packed) if renderer.direct and tested.direct else None
        if values is None:
            row = unpack(packed)
            if tested.matches(row):
                yield key, renderer.whole(row)
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
                yield stamp, renderer.whole(row)
            continue
        if values[renderer.plan(values[0])[2]] == stamp:  # else: a stale entry
            yield stamp, renderer.row(values)


def _invoice_feed(store: DataStore, division: int, after: int, renderer: Renderer
                  ) -> Iterator[tuple[int, Rendered]]:
    """Each invoice's header (LineNumber 0, ID = InvoiceID) then its lines over the header's
    values, as `store.invoice_rows`."""
    for stamp, packed in store.feed_entries("InvoiceFeed", division, after):
        if packed is None:
            continue
        values = values_of(packed)
        keys, lines_at = layout(values[0]) if values is not None else ((), -1)
        if values is None or lines_at < 0 or type(values[lines_at + 1]) is not list:
            yield from _invoice_rows_of(unpack(packed), stamp, after, renderer)
            continue
        lines = values[lines_at + 1]
        header_stamp = values[renderer.plan(values[0])[2]]
        last = lines[-1][renderer.plan(lines[-1][0])[2]] if lines else header_stamp
        if last != stamp:
            continue  # a stale entry
        header = list(renderer.empty)
        renderer.fill(header, values)
        renderer.set(header, "ID", decoded(values[keys.index("InvoiceID") + 1]))
        renderer.set(header, "LineNumber", 0)
        if header_stamp > after:
            yield header_stamp, renderer.finish(header)
        for line in lines:
            line_stamp = line[renderer.plan(line[0])[2]]
            if line_stamp > after:
                row = list(header)
                renderer.fill(row, line)
                yield line_stamp, renderer.finish(row)


def _invoice_rows_of(invoice: dict[str, Any], stamp: int, after: int, renderer: Renderer
                     ) -> Iterator[tuple[int, Rendered]]:
    if feed_stamp("SalesInvoices", invoice) != stamp:
        return
    for row in invoice_rows(invoice):
        if row["Timestamp"] > after:
            yield row["Timestamp"], renderer.whole(row)
