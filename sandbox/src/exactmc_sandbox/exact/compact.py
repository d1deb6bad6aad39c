"""Compact rows: the same plain dicts, at about a third of the memory (issue 9: the Exact
sandbox held 993 MB at 100k accounts).

Two CPython facts do it, neither changing what a row is (a `dict`, read and written as one):
- an instance's `__dict__` is a *split* dict: its keys live once per class, each dict holds
  only its values (≈300 bytes instead of ≈1,000 for a 25-field row). So a row is built as the
  attributes of a throw-away object of one class per kind of row, and its `__dict__` is kept.
  CPython lets a class's shared keys grow only while it has few instances, so each kind's
  class is primed with every field the schema gives it; a row with other keys silently
  becomes an ordinary dict (bigger, still correct).
- equal short strings and amounts are shared (`sys.intern`, a bounded float cache): IDs that
  rows refer to, currencies, codes, quantities and prices repeat across rows.
"""

from __future__ import annotations

import sys
from typing import Any

from exactmc_sandbox.exact.schema import DELETED_FIELDS, ENTITY_FIELDS, INVOICE_LINE_FIELDS

_KINDS: dict[str, type] = {}
_FLOATS: dict[float, float] = {}
_FLOAT_CACHE_LIMIT = 200_000  # distinct amounts shared; beyond it new ones are kept as they are
_INTERN_UP_TO = 40  # characters: IDs (36), codes, names; not free text
_FIELDS: dict[str, tuple[str, ...]] = {
    **{name: (*fields, "Timestamp") for name, fields in ENTITY_FIELDS.items()},
    "SalesInvoices": (*ENTITY_FIELDS["SalesInvoices"], "SalesInvoiceLines", "Timestamp"),
    "SalesInvoices.line": (*INVOICE_LINE_FIELDS, "Timestamp"),
    "Deleted": DELETED_FIELDS,
}


def _holder_class(kind: str) -> type:
    holder_class = type(f"{kind.replace('.', '_')}Row", (), {})
    primer = holder_class()
    for name in _FIELDS.get(kind, ()):  # the shared keys, while they may still grow
        setattr(primer, name, None)
    return holder_class


def compact(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """A compact copy of `row` (same keys, same order, equal values); nested lists of rows
    (invoice lines) are compacted as `{kind}.line` rows."""
    holder_class = _KINDS.get(kind)
    if holder_class is None:
        holder_class = _KINDS[kind] = _holder_class(kind)
    holder = holder_class()
    floats, intern = _FLOATS, sys.intern
    for name, value in row.items():  # inlined: this runs for every field of every row
        kind_of = type(value)
        if kind_of is str:
            if len(value) <= _INTERN_UP_TO:
                value = intern(value)
        elif kind_of is float:
            shared = floats.get(value)
            if shared is not None:
                value = shared
            elif len(floats) < _FLOAT_CACHE_LIMIT:
                floats[value] = value
        elif kind_of is list:
            value = [compact(f"{kind}.line", item) if type(item) is dict else item
                     for item in value]
        setattr(holder, name, value)
    return holder.__dict__
