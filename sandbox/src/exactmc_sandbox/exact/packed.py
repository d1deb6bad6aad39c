"""Rows held packed: each row one `bytes` (issue 9: at 100k accounts the Exact sandbox held
592 MB as split dicts; packed it holds a fraction of that).

A row is its values in the order of its keys (the key tuple is stored once per distinct
layout, so a row pays for its values only), dates as seconds since the epoch (a 1-tuple of
microseconds when not whole), IDs (lowercase GUIDs) as their 16 bytes, the values of fields with
few distinct values (codes, currencies, item descriptions) as 2 bytes numbering them in a table
shared by all rows, a value repeated inside a row (an invoice's ID in each of its lines) written
once, the invoice lines nested the same way, all `marshal`led (C speed: a few µs a row); then
compressed (zstd) with a dictionary learned from the first 64 rows of the same layout (-40 to
-55 %, ~1 µs a read), or before that, for a long row, plainly. Rows never hold `bytes` otherwise
(their values come from JSON).

Every read returns a fresh plain dict equal to what was stored, so a reader can never change a
stored row by mutating what it got: whoever changes a row writes it back (`table[key] = row`),
as `DataStore` does.
"""

from __future__ import annotations

import marshal
import pickle
import re
import threading
import zlib
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timedelta, timezone
from typing import Any

from exactmc_sandbox.zstd_codec import DictionaryCodec

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
DATE_FIELDS = frozenset({"Created", "Modified", "InvoiceDate", "DueDate", "LastPaymentDate",
                         "DeletedDate"})
_LINES = "SalesInvoiceLines"

# Shared by every store of the process (tests run several sandboxes at once): numbered under
# a lock, read without one (entries are only ever appended).
_NUMBERING = threading.Lock()
_LAYOUTS: dict[tuple[str, ...], int] = {}  # key tuple -> its number
_KEYS: list[tuple[str, ...]] = []  # number -> (key tuple, the positions of its dates)
_DATES: list[tuple[int, ...]] = []
_LINES_AT: list[int] = []  # number -> position of SalesInvoiceLines, or -1
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_PICKLED = b"\0"  # marks a row that is not plain (a date field holding something else)
_DEFLATED = b"\1"  # marks a deflated one (marshal's own first byte is neither)
_DEFLATE_FROM, _WBITS = 400, -10  # bytes; raw deflate with a 1 KB window (rows are small)
# Fields whose values repeat across rows: numbered once, held as 2 bytes (up to 65,536 values;
# later new ones are kept as they are).
SHARED_FIELDS = frozenset({
    "ItemCode", "ItemDescription", "Description", "CostCenter", "CostCenterDescription",
    "Currency", "Country", "CountryName", "Language", "City", "Status", "Unit",
    "DeletedBy", "State",
})
# Rows compressed (zstd, level 1) with a preset dictionary per layout, learned from its first
# rows (their values' common text: field codes, domains, the marshal framing): rows of 100-600
# bytes shrink by 40-55 %, where plain deflate gains nothing below ~400 bytes (issue 9: peak RSS
# at 100k; zstd: `zstd_codec.py`).
_LEARNED = b"\2"  # + the dictionary's 2-byte number
_SAMPLE_ROWS, _DICTIONARY_SIZE = 64, 4_096
_DICTIONARIES: list[DictionaryCodec] = []
_DICTIONARY_OF: dict[int, tuple[bytes, DictionaryCodec]] = {}  # layout -> (prefix, its dictionary)
_SAMPLES: dict[int, list[bytes]] = {}
_SHARED: list[str] = []
_SHARED_AT: dict[str, bytes] = {}
_SHARED_MAX, _SHARED_LONGEST = 65_536, 40


class _NotPlain(Exception):
    pass


def _layout(keys: tuple[str, ...]) -> int:
    number = _LAYOUTS.get(keys)
    if number is not None:
        return number
    with _NUMBERING:
        number = _LAYOUTS.get(keys)
        if number is None:
            _KEYS.append(keys)
            _DATES.append(tuple(at for at, name in enumerate(keys) if name in DATE_FIELDS))
            _LINES_AT.append(keys.index(_LINES) if _LINES in keys else -1)
            _SHARED_POS.append(tuple(at for at, name in enumerate(keys)
                                     if name in SHARED_FIELDS))
            number = _LAYOUTS[keys] = len(_KEYS) - 1  # published last: complete when seen
        return number


_SHARED_POS: list[tuple[int, ...]] = []


def _shared(value: str) -> bytes | str:
    number = _SHARED_AT.get(value)
    if number is not None:
        return number
    if len(value) > _SHARED_LONGEST:
        return value
    with _NUMBERING:
        number = _SHARED_AT.get(value)
        if number is None:
            if len(_SHARED) >= _SHARED_MAX:
                return value
            _SHARED.append(value)
            number = _SHARED_AT[value] = (len(_SHARED) - 1).to_bytes(2, "big")
        return number


def _values(row: dict[str, Any], seen: dict[str, Any]) -> tuple[Any, ...]:
    number = _layout(tuple(row))
    values = [number, *row.values()]
    for at, value in enumerate(values):
        if type(value) is str and len(value) == 36:
            # The same object for an equal GUID: marshal writes it once, then refers to it.
            shared = seen.get(value)
            if shared is None:
                shared = seen[value] = bytes.fromhex(value.replace("-", "")) if _GUID(value) \
                    else value
            values[at] = shared
        elif type(value) is bytes:
            raise _NotPlain
    for at in _SHARED_POS[number]:
        if type(values[at + 1]) is str:
            values[at + 1] = _shared(values[at + 1])
    for at in _DATES[number]:
        value = values[at + 1]
        if type(value) is datetime and value.tzinfo is not None:
            micros = (value - EPOCH) // MICROSECOND
            seconds, rest = divmod(micros, 1_000_000)
            values[at + 1] = (micros,) if rest else seconds
        elif value is not None:
            raise _NotPlain
    at = _LINES_AT[number]
    if at >= 0 and type(values[at + 1]) is list:
        values[at + 1] = [_values(line, seen) for line in values[at + 1]]
    return tuple(values)


def _guid(raw: bytes) -> str:
    h = raw.hex()
    return "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:]))


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    number = values[0]
    keys = _KEYS[number]
    # One pass (this runs for every row read): most values are kept as they are.
    row = {name: value if type(value) is not bytes
           else _guid(value) if len(value) == 16 else _SHARED[int.from_bytes(value)]
           for name, value in zip(keys, values[1:], strict=True)}
    for at in _DATES[number]:
        when = values[at + 1]
        if type(when) is int:
            row[keys[at]] = EPOCH + timedelta(seconds=when)
        elif when is not None:
            row[keys[at]] = EPOCH + timedelta(microseconds=when[0])
    at = _LINES_AT[number]
    if at >= 0 and type(values[at + 1]) is list:
        row[_LINES] = [_row(line) for line in values[at + 1]]
    return row


def pack(row: dict[str, Any], *, learned: bool = True) -> bytes:
    """`row` packed; `learned=False`: without the layout's dictionary (rows held briefly)."""
    try:
        values = _values(row, {})
        packed = marshal.dumps(values)
    except (_NotPlain, ValueError):  # ValueError: a value marshal cannot write
        return _PICKLED + pickle.dumps(row)
    compressed = _with_dictionary(values[0], packed) if learned else None
    if compressed is not None and len(compressed) < len(packed):
        return compressed
    if len(packed) >= _DEFLATE_FROM:
        deflated = zlib.compress(packed, 1, _WBITS)
        if len(deflated) + 1 < len(packed):
            return _DEFLATED + deflated
    return packed


def _with_dictionary(number: int, packed: bytes) -> bytes | None:
    """`packed` compressed with its layout's preset dictionary (learned from the layout's first
    rows), or None while the layout has none yet."""
    learned = _DICTIONARY_OF.get(number)
    if learned is None:
        with _NUMBERING:
            learned = _DICTIONARY_OF.get(number)
            if learned is None:
                samples = _SAMPLES.setdefault(number, [])
                samples.append(packed)
                if len(samples) < _SAMPLE_ROWS or len(_DICTIONARIES) >= _SHARED_MAX:
                    return None
                dictionary = DictionaryCodec(b"".join(samples)[-_DICTIONARY_SIZE:])
                _DICTIONARIES.append(dictionary)
                learned = _DICTIONARY_OF[number] = (
                    _LEARNED + (len(_DICTIONARIES) - 1).to_bytes(2, "big"), dictionary)
                del _SAMPLES[number]
    prefix, dictionary = learned
    return prefix + dictionary.compress(packed)


def _marshalled(packed: bytes) -> bytes | memoryview | None:
    """A row's marshal bytes, or None for a pickled row."""
    mark = packed[:1]
    if mark == _LEARNED:
        return _DICTIONARIES[int.from_bytes(packed[1:3])].decompress(memoryview(packed)[3:])
    if mark == _DEFLATED:
        return zlib.decompress(memoryview(packed)[1:], _WBITS)
    if mark == _PICKLED:
        return None
    return packed


def unpack(packed: bytes) -> dict[str, Any]:
    marshalled = _marshalled(packed)
    if marshalled is None:
        return pickle.loads(packed[1:])  # noqa: S301 (our own bytes)
    return _row(marshal.loads(marshalled))  # noqa: S302 (our own bytes)


def values_of(packed: bytes) -> tuple[Any, ...] | None:
    """A plain row's stored values (`layout(values[0])` names them; GUIDs, shared values and
    dates still encoded), or None for a row held pickled: for readers that render a few fields
    straight from them (`pages.py`) instead of building the whole row."""
    marshalled = _marshalled(packed)
    return None if marshalled is None else marshal.loads(marshalled)  # noqa: S302


def layout(number: int) -> tuple[tuple[str, ...], int]:
    """A layout's key tuple and the position of its SalesInvoiceLines (-1: none)."""
    return _KEYS[number], _LINES_AT[number]


def decoded(value: Any) -> Any:
    """A stored non-date value as the row holds it (GUID or shared value from its bytes)."""
    if type(value) is not bytes:
        return value
    return _guid(value) if len(value) == 16 else _SHARED[int.from_bytes(value)]


class PackedTable(MutableMapping[str, dict[str, Any]]):
    """key -> row, in insertion order, each row held packed."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def __getitem__(self, key: str) -> dict[str, Any]:
        return unpack(self.data[key])

    def get(self, key: str, default: Any = None) -> Any:
        packed = self.data.get(key)
        return default if packed is None else unpack(packed)

    def __setitem__(self, key: str, row: dict[str, Any]) -> None:
        self.data[key] = pack(row)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def move_to_end(self, key: str, row: dict[str, Any]) -> None:
        """Store `row` under `key` as the newest entry (a changed row moves to the end)."""
        self.data.pop(key, None)
        self.data[key] = pack(row)
