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

from collections import UserDict
from typing import Any

from exactmc_sandbox.mailchimp import fastjson
from exactmc_sandbox.zstd_codec import DictionaryCodec

# The compact UTF-8 JSON `json.dumps(separators=(",", ":"), ensure_ascii=False)` wrote, the
# same bytes, ~5x faster (fastjson.py; issue 9).
_encode = fastjson.encode
_decode = fastjson.decode


# Compressed (zstd, `zstd_codec.py`) with a dictionary of the JSON that the records share
# (keys, common values), so that even a short record shrinks: merge fields 264 -> ~135 bytes,
# a customer 421 -> ~200, an order of four lines 1,156 -> ~450.
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

_CODEC = DictionaryCodec(_ZDICT)


def pack(record: Any) -> bytes:
    text = _encode(record)
    compressed = _COMPRESSED + _CODEC.compress(text)
    return compressed if len(compressed) < len(text) else text


def unpack(packed: bytes) -> Any:
    if packed[:1] == _COMPRESSED:
        packed = _CODEC.decompress(packed[1:])
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
