"""The sandbox's JSON: msgspec (~8x faster encoding, ~3x faster decoding than the standard
library; JSON was ~40 % of the sandbox's CPU under a first sync, issue 9), falling back to
the standard library for what msgspec refuses, so nothing a client could send or store changes:
lone surrogates, NaN/Infinity, numbers beyond a double, UTF-16/32 bodies.

Answers are compact UTF-8 JSON (as Mailchimp's are), not `json.dumps`' spaced ASCII: the same
values, fewer bytes to send, escape into result files and gzip. One difference: a NaN or
Infinity that came in through the fallback is written as null (it is not JSON; Mailchimp
itself refuses such bodies).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

_fast_encode = msgspec.json.Encoder().encode
_fast_decode = msgspec.json.Decoder().decode
# ensure_ascii: what msgspec cannot write (a lone surrogate) is escaped, as before.
_slow_encode = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode
_slow_decode = json.loads


def encode(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    try:
        return _fast_encode(value)
    except UnicodeEncodeError:  # a lone surrogate
        return _slow_encode(value).encode()


def encode_text(value: Any) -> str:
    return encode(value).decode()


def decode(raw: bytes | str) -> Any:
    """What `json.loads(raw)` gives; raises ValueError where it does."""
    try:
        return _fast_decode(raw)
    except (msgspec.DecodeError, UnicodeEncodeError):
        return _slow_decode(raw)
