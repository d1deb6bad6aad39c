"""Exact rows → Singer records, shaped by the stream's schema in one pass.

The SDK's generic type conformance visits every field of every record (a third of the tap's
CPU); Exact's JSON already has the schema's types except in two places, fixed here per field:
`/Date(ms)/` strings in date-time fields, and booleans (the SDK turned 0/1 into false/true, so
we do too). Nothing else is touched: a `/Date(...)/` typed into a name stays text. Properties
the schema lacks are dropped (a warning once per stream and name), as the SDK did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from tap_exactonline.dates import convert_odata_date

LOGGER = logging.getLogger("tap_exactonline.records")

Fixer = Callable[[Any], Any]
_SILENT = frozenset({"__metadata"})  # OData's own envelope: expected, never a record field


def _types(prop: Mapping[str, Any]) -> set[str]:
    kind = prop.get("type")
    return {kind} if isinstance(kind, str) else set(kind or ())


def _boolean(value: Any) -> Any:
    return value if value is None or value is True or value is False else value != 0


def field_fixers(schema: Mapping[str, Any], interpretation: str) -> dict[str, Fixer | None]:
    """Each schema property → the function its values pass through (None: kept as they are)."""

    def date_time(value: Any) -> Any:
        return convert_odata_date(value, interpretation)

    fixers: dict[str, Fixer | None] = {}
    for name, prop in schema["properties"].items():
        types = _types(prop) - {"null"}
        if prop.get("format") == "date-time":
            fixers[name] = date_time
        elif types == {"boolean"}:
            fixers[name] = _boolean
        else:
            fixers[name] = None
    return fixers


class RecordShaper:
    """One per stream: `shape(row)` gives the record (a new dict; the row is not changed)."""

    def __init__(self, stream_name: str, schema: Mapping[str, Any], interpretation: str,
                 renames: Mapping[str, str] | None = None, fill_missing: bool = False) -> None:
        self._stream = stream_name
        self._fixers = field_fixers(schema, interpretation)
        self._renames = dict(renames or {})
        # The invoice streams list every field of theirs, null when the feed row lacks it.
        self._fill_missing = fill_missing
        self._warned: set[str] = set()

    def shape(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if self._renames:
            row = {self._renames.get(key, key): value for key, value in row.items()}
        fixers = self._fixers
        if self._fill_missing:
            get = row.get
            return {name: get(name) if fix is None else fix(get(name))
                    for name, fix in fixers.items()}
        record: dict[str, Any] = {}
        for key, value in row.items():
            if key in fixers:
                fix = fixers[key]
                record[key] = value if fix is None else fix(value)
            elif key not in _SILENT and key not in self._warned:
                self._warned.add(key)
                LOGGER.warning("Property '%s' of stream '%s' is not in its schema: dropped.",
                               key, self._stream)
        return record
