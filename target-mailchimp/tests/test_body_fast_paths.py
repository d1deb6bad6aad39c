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


def test_a_printable_text_is_one_the_cleaning_leaves_as_it_is() -> None:
    # clean_text, clean_strings and parse_member return a printable text unchanged without
    # running the regexes: exact only while no printable character is one they touch.
    from target_mailchimp.values import _BREAKS, _CONTROLS, _CONTROLS_ALL, clean_strings, clean_text

    printable = "".join(c for c in map(chr, range(0x110000)) if c.isprintable())
    for pattern in (_BREAKS, _CONTROLS, _CONTROLS_ALL):
        assert pattern.search(printable) is None
    assert clean_text("Düsseldorf\u00a0\u200bX\x85") == "Düsseldorf\u00a0\u200bX"
    assert clean_strings({"city": "Bahnhofstraße\t1", "id": "a\tb"}) == {
        "city": "Bahnhofstraße 1", "id": "a\tb"}


def test_member_merge_values_are_cleaned_and_cut_as_before() -> None:
    import types

    from target_mailchimp.members import parse_member

    context = types.SimpleNamespace(config={}, merge_field_map={})
    change, refused = parse_member({"email": "a@example.com", "merge_fields": {
        "fname": "Zoë", "LNAME": "x" * 300, "COMPANY": "A\x00B\nC", "AGE": 41}}, context)
    assert refused is None and change is not None
    assert change.merge_fields == {"FNAME": "Zoë", "LNAME": "x" * 255, "COMPANY": "AB C",
                                   "AGE": "41"}
    assert change.notes == ["LNAME cut to 255 characters"]


def test_fitting_merge_values_skips_only_calls_that_change_nothing() -> None:
    """`fit_all` leaves plain values of text-like fields without calling `fit_to_type`: the
    same fields and notes as calling it for every value."""
    from target_mailchimp.merge_fields import FITTED_TYPES, fit_all, fit_to_type

    types = {"TEXT": "text", "PHONE": "phone", "URL": "url", "NUM": "number", "DAY": "date",
             "BDAY": "birthday", "ADDR": "address", "DROP": "dropdown"}
    address = {"addr1": "Main 1", "city": "Utrecht", "state": "UT", "zip": "1234 AB"}
    values: list[Any] = ["plain", "", "12.5", "x1", "2025-04-14", "04/14", "junk", 7, 7.5,
                         True, address, {"addr1": "only"}, {"city": "x\x00y", **address}]
    tags = [*types, "UNKNOWN"]
    for shift in range(len(values)):
        fields = {tag: values[(i + shift) % len(values)] for i, tag in enumerate(tags)}
        expected, expected_notes = dict(fields), []
        for tag, value in list(expected.items()):
            fitted, problem = fit_to_type(tag, value, types.get(tag, "text"))
            if problem:
                del expected[tag]
                expected_notes.append(problem)
            else:
                expected[tag] = fitted
        notes: list[str] = []
        fit_all(fields, types, notes)
        assert (fields, notes) == (expected, expected_notes)
    assert "text" not in FITTED_TYPES and "address" in FITTED_TYPES


def _bodies() -> list[Any]:
    """Order-, customer- and product-like bodies with every kind of text the cleaning
    touches or leaves, in values, lists, nested objects, identifiers and keys."""
    texts = ["plain", "Stra\u00dfe", "zw\u200bsp", "nb\xa0sp", "ls\u2028ps", "tab\there",
             "line\nbreak", " \r\nlead", "del\x7f", "c1\x85", "nul\x00", "bell\x07",
             "surrogate\ud800", 'quote"', "back\\slash", "", "\t"]
    bodies: list[Any] = []
    for text in texts:
        bodies += [
            {"id": "o1", "customer": {"id": "c1", "email_address": "a@x.nl",
                                      "company": text, "address": {"city": text}},
                     "lines": [{"id": "l1", "product_id": text, "product_title": text,
                                "quantity": 2, "price": Decimal("12.50")}],
                     "order_total": 25.0, "processed_at_foreign": "2025-04-14T00:40:18+00:00"},
            {"id": text, "title": "P", "description": text,
             "variants": [{"id": "v", "title": text, "price": 1.5}], "tags": [text, "x"]},
            {"id": "c", "email_address": text, "opt_in_status": False, "first_name": text,
             "when": datetime.datetime(2025, 1, 1), text or "k": "v", "n": None},
        ]
    return bodies


@pytest.mark.parametrize("body", _bodies())
def test_bodies_are_cleaned_as_before(body: Any) -> None:
    """`clean_body` (one JSON encoding looked over) gives what `clean_strings` gave."""
    from target_mailchimp.values import clean_body, clean_strings

    assert clean_body(body) == clean_strings(body)


def test_a_body_needing_no_cleaning_is_not_copied() -> None:
    from target_mailchimp.values import clean_body

    body = _bodies()[0]
    assert clean_body(body) is body
    dirty = _bodies()[3 * 8]  # "del\x7f"
    assert clean_body(dirty) is not dirty


def _address_before(value: dict[Any, Any]) -> tuple[dict[str, str] | None, str | None]:
    """clean_address as it was (every part through clean_text)."""
    from target_mailchimp.merge_fields import ADDRESS_REQUIRED, TEXT_LIMIT
    from target_mailchimp.values import clean_text

    address = {str(key): clean_text(str(part))[:TEXT_LIMIT]
               for key, part in value.items() if part not in (None, "")}
    missing = [k for k in ADDRESS_REQUIRED if not address.get(k)]
    if missing:
        return None, f"ADDRESS left out (missing {', '.join(missing)})"
    return address, None


@pytest.mark.parametrize("part", ["Main 1", "", None, "x" * 255, "y" * 300, "tab\tin",
                                  "\t", "del\x7f", "zw\u200b", "Stra\u00dfe", 12, 0, 1.5,
                                  False, ["a"]])
def test_address_parts_are_cleaned_as_before(part: Any) -> None:
    from target_mailchimp.merge_fields import clean_address

    for key in ("addr1", "city", "addr2", 5):
        value = {"addr1": "Main 1", "city": "Utrecht", "state": "UT", "zip": "1234"}
        value[key] = part
        assert clean_address(value) == _address_before(value)
