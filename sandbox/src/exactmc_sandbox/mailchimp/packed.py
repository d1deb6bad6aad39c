"""Records held packed: each as compact JSON bytes, decoded on every read (issue 9: a member
with an address, a customer and an order of three lines held as dicts cost ~6,900 bytes per
account, 929 MB at 100k; packed they cost under a third), compressed with a preset
dictionary (see `_ZDICT`).

Every read returns a fresh plain dict equal to what was stored, so a reader can never change a
stored record by mutating what it got: writers store a new record (they already did). Values
are what JSON carries (the API's bodies are JSON): str keys, str/int/float/bool/None, lists
and dicts.
"""

from __future__ import annotations

import threading
from collections import UserDict
from typing import Any

import zstandard

from exactmc_sandbox.mailchimp import fastjson

# The compact UTF-8 JSON `json.dumps(separators=(",", ":"), ensure_ascii=False)` wrote, the
# same bytes, ~5x faster (fastjson.py; issue 9).
_encode = fastjson.encode
_decode = fastjson.decode


# Compressed with zstd at level 1, primed with the JSON that the records share (keys, common
# values) so that even a short record shrinks: merge fields 264 -> ~135 bytes, a customer
# 421 -> ~200, an order of four lines 1,156 -> ~450. Issue 9: raw deflate with the same
# dictionary packed to the same sizes but cost ~11 µs a record (copying its primed state and
# its window) against ~4.5 here, and ~3.5 µs to inflate against ~1.7: packing was a fifth of
# this sandbox's CPU in a first sync.
_ZDICT = (
    b'"email_address":"","opt_in_status":false,"first_name":"","last_name":"","company":"",'
    b'"address":{"address1":"","address2":"","city":"","province":"","postal_code":"",'
    b'"country_code":"NL"},"created_at":"","updated_at":"+00:00",'
    b'{"id":"exact-101-","customer":{"id":"exact-","currency_code":"EUR","order_total":'
    b'"tax_total":,"discount_total":0.0,"financial_status":"paid","pending",'
    b'"processed_at_foreign":"updated_at_foreign":"lines":[{"discount":0,"id":"",'
    b'"product_id":"exact-","product_variant_id":"exact-","quantity":1,"price":.0,'
    b'"product_title":"","product_variant_title":""},'
    b'{"FNAME":"","LNAME":"","ADDRESS":{"addr1":"","addr2":"","city":"","state":"","zip":"",'
    b'"country":"NL"},"PHONE":"+31 ","COMPANY":" B.V.","ACCCODE":"","RELSTATUS":"customer",'
    b'"COUNTRY":"NL"}'
)
_COMPRESSED = b"\0"  # marks a compressed record: JSON text never starts with NUL

_DICTIONARY = zstandard.ZstdCompressionDict(_ZDICT, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
_DICTIONARY.precompute_compress(level=1)


class _Codec(threading.local):
    """One compressor and decompressor per thread: setting one up with the dictionary costs
    more than a record (~13 µs), and zstandard's objects must not be shared between threads
    (the HTTP server and the batch runner pack at the same time)."""

    def __init__(self) -> None:
        self.compress = zstandard.ZstdCompressor(
            level=1, dict_data=_DICTIONARY, write_checksum=False, write_dict_id=False).compress
        self.decompress = zstandard.ZstdDecompressor(dict_data=_DICTIONARY).decompress


_codec = _Codec()


def pack(record: Any) -> bytes:
    text = _encode(record)
    compressed = _COMPRESSED + _codec.compress(text)
    return compressed if len(compressed) < len(text) else text


def unpack(packed: bytes) -> Any:
    if packed[:1] == _COMPRESSED:
        packed = _codec.decompress(packed[1:])
    return _decode(packed)


class PackedRecords(UserDict[str, dict[str, Any]]):
    """A mapping of id -> record whose records are held packed (UserDict routes every read and
    write through `__getitem__`/`__setitem__`, and `get`, `values`, `items` through those)."""

    def __getitem__(self, key: str) -> dict[str, Any]:
        return unpack(self.data[key])

    def __setitem__(self, key: str, record: dict[str, Any]) -> None:
        self.data[key] = pack(record)

    def get(self, key: str, default: Any = None) -> Any:
        """Without Mapping.get's KeyError for a missing key (every new record's write)."""
        packed = self.data.get(key)
        return default if packed is None else unpack(packed)
