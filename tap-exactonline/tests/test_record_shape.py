"""Records are shaped by the stream's schema: dates converted only where it says date-time.

The SDK's per-field type fixing is off (it cost a third of the tap's CPU); these tests hold
the tap to what it guaranteed: every record valid against its SCHEMA message, no property the
schema lacks, `/Date(ms)/` turned into ISO-8601 UTC exactly in the date-time fields.
"""

from __future__ import annotations

import re
from decimal import Decimal

from jsonschema import Draft202012Validator
from tap_exactonline.dates import convert_odata_date, parse_odata_date, to_iso_utc
from tap_exactonline.tap import TapExactOnline

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
DATE_LOOKALIKE = "/Date(1700000000000)/"  # a customer may type anything into a name


def _date_time_fields(schema: dict) -> set[str]:
    return {name for name, prop in schema["properties"].items()
            if prop.get("format") == "date-time"}


def test_dates_are_converted_exactly_where_the_schema_says_date_time(
        exact_sandbox, config_for, run_tap):
    created = exact_sandbox.create("Accounts", {
        "Division": 101, "Name": DATE_LOOKALIKE, "Email": "datum@example.com",
        "AddressLine1": "/Date(0)/",
    })
    run = run_tap(config_for(exact_sandbox, divisions=[101]))

    schemas = {m["stream"]: m["schema"] for m in run.messages if m["type"] == "SCHEMA"}
    checked = 0
    for stream, schema in schemas.items():
        validator = Draft202012Validator(schema)
        dates = _date_time_fields(schema)
        for record in run.records(stream):
            assert set(record) <= set(schema["properties"]), stream  # nothing unmapped
            errors = [e.message for e in validator.iter_errors(record)]
            assert not errors, (stream, errors)
            for name in dates:
                value = record.get(name)
                assert value is None or ISO_UTC.match(value), (stream, name, value)
            checked += 1
    assert checked > 100
    account = next(r for r in run.records("accounts") if r["ID"] == created["ID"])
    assert account["Name"] == DATE_LOOKALIKE  # not a date-time field: verbatim
    assert account["AddressLine1"] == "/Date(0)/"
    assert ISO_UTC.match(account["Created"]) and ISO_UTC.match(account["Modified"])


def test_post_process_fixes_types_only_where_exact_could_differ(exact_sandbox, config_for):
    """Narrow unit case: what the SDK's conformance did for us, done per typed field."""
    tap = TapExactOnline(config=config_for(exact_sandbox, divisions=[101]))
    accounts = tap.streams["accounts"]
    record = accounts.post_process({
        "__metadata": {"uri": "x"}, "ID": "a", "Code": "   42", "Blocked": 1, "IsSales": 0,
        "Created": "/Date(1700000000000)/", "Modified": None, "Timestamp": 7,
        "Unexpected": "dropped", "Name": DATE_LOOKALIKE,
    }, {"division": 101})
    assert record == {
        "ID": "a", "Code": "42", "Blocked": True, "IsSales": False,
        "Created": "2023-11-14T21:13:20Z", "Modified": None, "Timestamp": 7,
        "Name": DATE_LOOKALIKE, "Division": 101,
    }
    receivables = tap.streams["receivables"]
    record = receivables.post_process({
        "ID": "r", "Account": "acc", "AccountCode": "  7", "AmountDC": Decimal("1.10"),
        "LastPaymentDate": "/Date(-62135596800000)/",
    }, {"division": 101})
    assert record == {"ID": "r", "AccountId": "acc", "AccountCode": "7",
                      "AmountDC": Decimal("1.10"), "LastPaymentDate": "0001-01-01T00:00:00Z",
                      "Division": 101}


def test_the_fast_date_conversion_agrees_with_the_zone_library_around_dst_changes():
    """convert_odata_date caches Amsterdam's offset per wall-clock hour; parse_odata_date asks
    zoneinfo every time. Minute by minute through both 2023 changes, and odd values."""
    spring, autumn = 1679792400000, 1698541200000  # 2023-03-26 01:00Z, 2023-10-29 01:00Z
    values = [base + minute * 60_000 + 123 for base in (spring, autumn)
              for minute in range(-180, 180)]
    values += [-62135596800000, 0, 1700000000000]
    for ms in values:
        for interpretation in ("amsterdam_wall_clock", "utc"):
            text = f"/Date({ms})/"
            assert convert_odata_date(text, interpretation) == to_iso_utc(
                parse_odata_date(text, interpretation)), (text, interpretation)
