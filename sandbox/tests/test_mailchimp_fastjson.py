"""The sandbox's JSON (fastjson.py, issue 9): msgspec where it can, the standard library where
msgspec refuses, so that every body still decodes to what `json.loads` made of it and every
answer decodes to the value it was built from."""

from __future__ import annotations

import json
from typing import Any

import pytest
from exactmc_sandbox.mailchimp import fastjson

VALUES: list[Any] = [
    {"a": 1, "b": [1.5, -0.0, None, True, False, "x"], "c": {"d": "ü€😀", "e": ""}},
    [123456789012345678901234567890, 1e16, 1e-7, 0.1, 121.0],
    "a\u0000\n\"\\/\t", {}, [], 0,
]


@pytest.mark.parametrize("value", VALUES)
def test_encode_decodes_to_the_same_value(value: Any) -> None:
    assert json.loads(fastjson.encode(value)) == value
    assert fastjson.decode(fastjson.encode(value)) == value


@pytest.mark.parametrize("raw", [
    b'"\\ud800"',  # a lone surrogate: msgspec refuses it, json keeps it
    b"[NaN, Infinity]", b"1e400", b'{"a": 1, "a": 2}', b" [1] ",
    json.dumps({"x": "é"}).encode("utf-16"),  # json.loads detects UTF-16 too
])
def test_decode_is_json_loads(raw: bytes) -> None:
    decoded, expected = fastjson.decode(raw), json.loads(raw)
    assert repr(decoded) == repr(expected)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,]", b"\xff"])
def test_decode_refuses_what_json_loads_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        fastjson.decode(raw)


def test_encode_keeps_what_only_json_can_write() -> None:
    value = {"s": "\ud800", "t": ["x\udfff"]}  # msgspec refuses lone surrogates
    assert json.loads(fastjson.encode(value)) == value


def test_encode_is_compact_utf8() -> None:
    assert fastjson.encode({"a": [1, "ü"]}) == '{"a":[1,"ü"]}'.encode()
