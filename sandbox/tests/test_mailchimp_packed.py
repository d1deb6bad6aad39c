"""Packed records (packed.py): the round trip is exact, one zstd codec set up once is shared by
every thread, and short records still shrink (issue 9)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import zstandard
from exactmc_sandbox import zstd_codec
from exactmc_sandbox.mailchimp import packed
from in_threads import failures_in_threads


def _records() -> list[Any]:
    order = {"id": "exact-101-1", "customer": {"id": "exact-7"}, "currency_code": "EUR",
             "order_total": 123.45, "financial_status": "paid", "lines": [
                 {"id": "l1", "product_id": "exact-p1", "quantity": 2, "price": 10.0}]}
    return [order, {"FNAME": "Anna", "LNAME": "de Vries", "ADDRESS": {"city": "Utrecht"}},
            {}, {"a": 1}, {**order, "id": "exact-101-2", "note": "ü" * 300}, [1, "x", None]]


def test_round_trip_and_the_bytes_of_a_short_record() -> None:
    for _ in range(2):  # the second pass: no state carried over from earlier records
        for record in _records():
            assert packed.unpack(packed.pack(record)) == record
    # Too short to gain from compression: kept as the JSON text (never starts with NUL).
    text = json.dumps({"a": 1}, separators=(",", ":")).encode()
    assert packed.pack({"a": 1}) == text


def test_pack_sets_up_no_compressor_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    real = zstandard.ZstdCompressor
    monkeypatch.setattr(zstd_codec.zstandard, "ZstdCompressor",
                        lambda *a, **k: made.append(1) or real(*a, **k))
    for record in _records() * 20:
        packed.pack(record)
    assert made == []


def test_threads_pack_and_unpack_at_once() -> None:
    """The HTTP server's threads and the batch runner pack at the same time with one shared
    codec: no record may come back as another's or garbled."""

    def check(n: int) -> list[str]:
        failed = []
        for i in range(1000):
            record = {**_records()[0], "id": f"exact-{n}-{i}", "note": "x" * (i % 50)}
            if packed.unpack(packed.pack(record)) != record:
                failed.append(record["id"])
        return failed

    assert failures_in_threads(check) == []


def test_the_dictionary_shrinks_a_short_record() -> None:
    """A customer of ~420 bytes of JSON packs to under half, thanks to the preset dictionary
    of the keys and values records share."""
    customer = {"id": "exact-101-ec2c4f79-d249-48d2-800d-f7649d46ea9a",
                "email_address": "daan.muller255@handelbakker.example", "opt_in_status": False,
                "first_name": "Daan", "last_name": "Müller", "company": "Handel Bakker BV",
                "address": {"address1": "Kerkstraat 11", "address2": "", "city": "Utrecht",
                            "province": "", "postal_code": "6075 LD", "country_code": "NL"},
                "created_at": "2026-11-28T04:50:00+00:00",
                "updated_at": "2026-11-28T04:50:00+00:00"}
    assert len(packed.pack(customer)) < 0.5 * len(packed._encode(customer))
