"""Narrow unit cases: date conversion, header-driven pacing, OData paging, error texts."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
import requests_mock
from tap_exactonline.client import division_of, odata_error_text
from tap_exactonline.dates import convert_odata_date, modified_filter, parse_iso
from tap_exactonline.invoice_feed import LineSpool
from tap_exactonline.pagination import ODataNextPaginator
from tap_exactonline.rate_limit import DailyLimitReached, RateLimiter
from tap_exactonline.tap import TapExactOnline
from tap_exactonline.token_store import TokenRecord


@pytest.mark.parametrize(("raw", "interpretation", "expected"), [
    # Winter: the Amsterdam wall clock is UTC+1; summer: UTC+2.
    ("/Date(1672531200000)/", "amsterdam_wall_clock", "2022-12-31T23:00:00Z"),
    ("/Date(1719835200000)/", "amsterdam_wall_clock", "2024-07-01T10:00:00Z"),
    ("/Date(1719835200000)/", "utc", "2024-07-01T12:00:00Z"),
    ("/Date(1719835200123)/", "utc", "2024-07-01T12:00:00.123Z"),
    # .NET's DateTime.MinValue ("no date"): the Amsterdam shift would leave year 1.
    ("/Date(-62135596800000)/", "amsterdam_wall_clock", "0001-01-01T00:00:00Z"),
    ("plain text", "utc", "plain text"),
    (None, "utc", None),
])
def test_odata_dates_become_iso_utc(raw, interpretation, expected):
    assert convert_odata_date(raw, interpretation) == expected


def test_modified_filter_is_amsterdam_local_time_with_overlap():
    since = parse_iso("2024-07-01T10:00:00Z")
    assert modified_filter(since, 60) == "Modified gt datetime'2024-07-01T11:59:00'"
    assert modified_filter(parse_iso("2024-01-15T10:00:00Z"), 0) == (
        "Modified gt datetime'2024-01-15T11:00:00'")


def test_modified_filter_never_skips_the_repeated_autumn_hour():
    # 2024-10-27: Amsterdam's clock runs 02:00-03:00 twice (CEST, then CET).
    first_pass = parse_iso("2024-10-27T00:30:00Z")  # 02:30 CEST
    # A change at 01:15Z shows 02:15 on the wall clock: "gt 02:30" would skip it.
    assert modified_filter(first_pass, 0) == "Modified gt datetime'2024-10-27T01:30:00'"
    second_pass = parse_iso("2024-10-27T01:30:00Z")  # 02:30 CET: the wall clock only goes up
    assert modified_filter(second_pass, 0) == "Modified gt datetime'2024-10-27T02:30:00'"
    assert modified_filter(parse_iso("2024-03-31T01:30:00Z"), 0) == (  # spring: 03:30 CEST
        "Modified gt datetime'2024-03-31T03:30:00'")


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacing_sleeps_until_the_minutely_reset_in_milliseconds():
    fake = FakeTime(1_000.0)
    limiter = RateLimiter(sleep=fake.sleep, clock=fake.clock)
    limiter.observe(101, 200, {"X-RateLimit-Minutely-Remaining": "0",
                               "X-RateLimit-Minutely-Reset": "1012500",  # epoch ms
                               "X-RateLimit-Remaining": "4000"})
    limiter.before_request(102)  # another division has its own budget
    assert fake.slept == []
    limiter.before_request(101)
    assert fake.slept and 12.5 <= fake.slept[0] <= 12.6
    limiter.before_request(101)  # the reset has passed: no second wait
    assert len(fake.slept) == 1


def test_daily_budget_spent_refuses_further_calls_for_that_division():
    fake = FakeTime(1_000.0)
    limiter = RateLimiter(sleep=fake.sleep, clock=fake.clock)
    limiter.observe(101, 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "90000000"})
    with pytest.raises(DailyLimitReached):
        limiter.before_request(101)
    with pytest.raises(DailyLimitReached):
        limiter.observe(102, 429, {"X-RateLimit-Remaining": "0"})
    assert limiter.exhausted == {101, 102}
    limiter.before_request(103)


def test_paginator_follows_next_verbatim():
    next_url = "https://start.exactonline.nl/api/v1/1/sync/CRM/Accounts?$skiptoken=5L&$select=ID"
    with requests_mock.Mocker() as mock:
        mock.get("https://x/a", json={"d": {"results": [], "__next": next_url}})
        mock.get("https://x/b", json={"d": {"results": []}})
        paginator = ODataNextPaginator()
        paginator.advance(requests.get("https://x/a", timeout=1))
        assert paginator.current_value.geturl() == next_url
        paginator.advance(requests.get("https://x/b", timeout=1))
        assert paginator.finished


def test_error_text_and_division_parsing():
    with requests_mock.Mocker() as mock:
        mock.get("https://x/e", status_code=400,
                 json={"error": {"code": "", "message": {"lang": "", "value": "Bad $filter"}}})
        mock.get("https://x/h", status_code=502, text="<html>gateway</html>", reason="Bad Gateway")
        assert odata_error_text(requests.get("https://x/e", timeout=1)) == "Bad $filter"
        assert odata_error_text(requests.get("https://x/h", timeout=1)) == "Bad Gateway"
    assert division_of("https://h/api/v1/101/sync/CRM/Accounts?x=1") == 101
    assert division_of("https://h/api/v1/current/Me") is None


def test_amounts_keep_every_digit_exact_sent():
    tap = TapExactOnline(config={"client_id": "c", "client_secret": "s",
                                 "token_store_path": "unused", "token_store_key": "k"},
                         validate_config=False, setup_mapper=False)
    with requests_mock.Mocker() as mock:
        mock.get("https://x/p", text='{"d": {"results": [{"AmountDC": 1234567890123.4567}]}}')
        rows = list(tap.streams["receivables"].parse_response(requests.get("https://x/p",
                                                                           timeout=1)))
    assert rows == [{"AmountDC": Decimal("1234567890123.4567")}]


def test_invoice_feed_spool_keeps_amounts_exact():
    spool = LineSpool()
    row = {"ID": "x", "AmountFC": Decimal("1234567890123.4567"), "LineNumber": 1}
    writer = spool.writer("sales_invoice_lines", 101)
    writer.write(row)
    writer.close()
    try:
        assert list(spool.read("sales_invoice_lines", 101)) == [row]
    finally:
        spool.close()


def test_token_record_never_shows_tokens():
    record = TokenRecord(refresh_token="r-secret", access_token="a-secret")
    assert "secret" not in repr(record)
