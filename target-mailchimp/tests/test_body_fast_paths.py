"""Issue 9's shortcuts in building bodies give what the general path gave."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from target_mailchimp.ecommerce import order_line
from target_mailchimp.values import iso, to_datetime


def slow_iso(value: Any) -> str | None:
    parsed = to_datetime(value)
    if parsed is None:
        return None
    return parsed.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat()


@pytest.mark.parametrize("value", [
    "2025-04-14T00:40:18Z", "2025-04-14T00:40:18+00:00", "2025-04-14T00:40:18+02:00",
    "2025-04-14T00:40:18.5Z", "2025-04-14 00:40:18Z", "2025-W16-1T00:40:18Z",
    "2025-02-30T00:40:18Z", "2025-04-14T24:00:00+00:00", "2025-04-14T00:40:1xZ",
    "2025-04-14", "2025-04-14T00:40:18", "soon", "", None, 20250414,
    datetime.datetime(2025, 4, 14, 0, 40, 18, 5), datetime.date(2025, 4, 14),
])
def test_iso_is_what_it_was(value: Any) -> None:
    assert iso(value) == slow_iso(value)


@pytest.mark.parametrize(("quantity", "price", "expected"), [
    (3, Decimal("12.75"), (3, Decimal("12.75"))),
    (None, Decimal("5"), (1, Decimal("5"))),
    (0, None, (1, None)),
    (2.0, 4.5, (2, 4.5)),
    (Decimal("2"), Decimal("4.5"), (2, Decimal("4.5"))),
    (Decimal("2.5"), Decimal("10"), (1, 25.0)),
    (2.5, None, (2, None)),
    (True, 1, (1, 1)),
])
def test_order_lines_are_what_they_were(quantity: Any, price: Any, expected: tuple) -> None:
    line = order_line({"id": "L1", "product_id": 7, "quantity": quantity, "price": price}, 1)
    body = {"id": "L1", "product_id": "7", "product_variant_id": "7",
            "quantity": expected[0], "price": expected[1]}
    assert line == {k: v for k, v in body.items() if v is not None}
    assert type(line["quantity"]) is int
