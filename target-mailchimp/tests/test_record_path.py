"""The per-record path (issue 9): what the target does with each incoming record before a drain.

singer-sdk parsed every date-time field of every record into a datetime (walking the schema per
record) and stopped the whole run on one it could not parse. The target reads dates where it
uses them (`values.to_datetime`), so it now checks only the schema's date-time fields once per
drain: a record with an unreadable one goes to the audit trail with its field and value, and
the run goes on.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from target_mailchimp.sinks import MailchimpSink
from target_mailchimp.target import TargetMailchimp
from target_mailchimp.testing import audit_rows, by_email, run_target, state, stream

OLD = "2020-01-01T00:00:00Z"


def test_a_record_with_an_unreadable_date_time_is_refused_and_the_run_goes_on(
        mailchimp_sandbox: Any, config: dict[str, Any]) -> None:
    states = run_target(config, [
        *stream("members", [
            {"email": "bad@example.com", "source_updated_at": "yesterday"},
            {"email": "good@example.com", "source_updated_at": OLD},
        ]),
        *stream("orders", [
            {"id": "O1", "customer_id": "C1", "currency_code": "EUR", "order_total": 1,
             "processed_at_foreign": "31-12-2024", "lines": []},
        ]),
        state({"done": 1}),
    ])
    assert states == [{"done": 1}]
    assert set(by_email(mailchimp_sandbox)) == {"good@example.com"}
    failed = {row["record_key"]: row for row in audit_rows(config, outcome="failed")}
    assert set(failed) == {"bad@example.com", "o1"}
    assert failed["bad@example.com"]["reason"] == (
        "invalid date-time in source_updated_at: 'yesterday'")
    assert failed["o1"]["reason"] == "invalid date-time in processed_at_foreign: '31-12-2024'"
    # Bad input, kept whole for whoever fixes the source (not a write healing could send).
    assert json.loads(failed["o1"]["payload"])["processed_at_foreign"] == "31-12-2024"
    assert failed["o1"]["method"] is None


def test_records_reach_the_writers_as_the_source_wrote_them(
        mailchimp_sandbox: Any, config: dict[str, Any], monkeypatch: Any) -> None:
    # No datetime objects made per record (the writers parse the few dates they use), and
    # numbers stay exact Decimals as the SDK's own reader gave them.
    seen: list[dict[str, Any]] = []
    write = MailchimpSink._write_changed

    def spy(sink: MailchimpSink, written: Any, records: list[dict[str, Any]]) -> None:
        seen.extend(records)
        write(sink, written, records)

    monkeypatch.setattr(MailchimpSink, "_write_changed", spy)
    run_target(config, stream("products", [{"id": "P1", "title": "W", "price": 19.99,
                                            "description": "x"}])
               + stream("members", [{"email": "a@example.com", "source_updated_at": OLD}]))
    assert seen[0]["price"] == Decimal("19.99")
    assert seen[1]["source_updated_at"] == OLD
    assert mailchimp_sandbox.store("exact-store")["products"]["P1"]["variants"][0]["price"] == 19.99


def test_the_reader_is_the_fast_one() -> None:
    # msgspec reads a line in less than half json.loads' time (with Decimal floats alike).
    assert TargetMailchimp.message_reader_class.__module__ == "singer_sdk.contrib.msgspec"


def test_fingerprints_of_records_are_those_written_before_dates_were_left_as_text() -> None:
    # Digests remembered by earlier versions (the SDK had made datetimes and dates of the
    # date-time fields) must still match: otherwise the first run after an upgrade sends
    # every member, tag and order again.
    import datetime

    from target_mailchimp.written import fingerprint

    as_text = {"email": "a@example.com", "source_updated_at": "2024-03-01T10:00:00Z",
               "day": "2024-03-01", "price": Decimal("1.5"), "note": "€"}
    as_sdk_parsed = {**as_text,
                     "source_updated_at": datetime.datetime(2024, 3, 1, 10,
                                                            tzinfo=datetime.timezone.utc),
                     "day": datetime.date(2024, 3, 1)}
    dates = {"source_updated_at": "date-time", "day": "date"}
    assert fingerprint(as_text, dates) == fingerprint(as_sdk_parsed)
    assert fingerprint({**as_text, "source_updated_at": "soon"}, dates) != fingerprint(
        as_sdk_parsed)


def test_dates_read_from_text_as_from_parsed_values():
    """Issue 9: text (nearly every call) takes a short path; the answers are the same."""
    import datetime

    from target_mailchimp.values import to_datetime

    utc = datetime.timezone.utc
    at = datetime.datetime(2025, 4, 14, 0, 40, 18, tzinfo=utc)
    assert to_datetime("2025-04-14T00:40:18Z") == at
    assert to_datetime("2025-04-14T00:40:18+00:00") == at
    assert to_datetime("2025-04-14T00:40:18") == at  # naive: UTC
    assert to_datetime("2025-04-14T02:40:18+02:00") == at
    assert to_datetime(at.replace(tzinfo=None)) == at
    assert to_datetime(datetime.date(2025, 4, 14)) == at.replace(minute=0, hour=0, second=0)
    for unreadable in ("", None, "not a date", "2025-13-01"):
        assert to_datetime(unreadable) is None
