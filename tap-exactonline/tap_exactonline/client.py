"""The Exact Online REST stream base: URLs per division, OData paging, pacing, errors, retries."""

from __future__ import annotations

import functools
import logging
import random
import re
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers._typing import TypeConformanceLevel
from singer_sdk.streams import RESTStream

from tap_exactonline.answers import page_of
from tap_exactonline.fair_share import MISSED_TURNS_KEY, ShareSpent
from tap_exactonline.pagination import ODataNextPaginator
from tap_exactonline.rate_limit import DailyLimitReached
from tap_exactonline.records import RecordShaper

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, RequestFunc
    from singer_sdk.singerlib import SelectionMask
    from singer_sdk.streams.rest import HTTPRequest, PageContext

    from tap_exactonline.tap import TapExactOnline

LOGGER = logging.getLogger("tap_exactonline.client")
_DIVISION_IN_PATH = re.compile(r"/api/v1/(\d+)/")
PARTITION_KEY = "division"  # the state's partition context: {"division": 101}


def division_of(url: str | None) -> int | None:
    """The division a request goes to (rate limits are per division); None for current/Me."""
    match = _DIVISION_IN_PATH.search(url or "")
    return int(match.group(1)) if match else None


def odata_error_text(response: requests.Response) -> str:
    """Exact's error text (`error.message.value`), or the HTTP reason."""
    try:
        message = response.json()["error"]["message"]
        return str(message.get("value") if isinstance(message, dict) else message)
    except (ValueError, KeyError, TypeError):
        return response.reason or ""


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


class RateLimitedError(RetriableAPIError):
    """429 on the minutely window: wait for the reset, then the same call again."""


class UnauthorizedError(FatalAPIError):
    """401 on a data call: the token was revoked, or our clock and Exact's disagree."""


class ExactStream(RESTStream):
    """One Exact endpoint, read per division (`path` contains `{division}`)."""

    # The fields asked for with `$select` (mandatory on sync/ and bulk/ endpoints).
    select_fields: ClassVar[tuple[str, ...]] = ()

    _tap: TapExactOnline

    @property
    def tap(self) -> TapExactOnline:
        return self._tap

    @property
    def url_base(self) -> str:
        return f"{self.tap.base_url}/api/v1"

    @property
    def authenticator(self) -> Any:
        return self.tap.authenticator  # one for all streams: tokens rotate on every refresh

    @property
    def http_headers(self) -> dict[str, str]:
        # Without it Exact answers XML.
        return {"Accept": "application/json"}

    @property
    def user_agent(self) -> str:
        return self.config.get("user_agent") or "tap-exactonline/0.1 (singer-sdk)"

    @property
    def timeout(self) -> float:  # type: ignore[override]  # requests takes fractions too
        return float(self.config.get("request_timeout", 300))

    @property
    def partitions(self) -> list[dict[str, Any]] | None:
        return [{PARTITION_KEY: division} for division in self.tap.divisions]

    @property
    def mask(self) -> SelectionMask:
        # The SDK copies the partition context into every record; records already carry Exact's
        # own `Division`, so the copy is deselected and dropped before the schema check (which
        # would warn, once per stream and run, about a property not in the schema).
        mask = super().mask
        mask[("properties", PARTITION_KEY)] = False
        return mask

    def get_new_paginator(self) -> ODataNextPaginator:
        return ODataNextPaginator()

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.select_fields:
            params["$select"] = ",".join(self.select_fields)
        return params

    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        request = super().get_http_request(page=page)
        request.safe_query_chars = "$,'"
        if page.next_page_token:
            # Exact's `__next` is complete (query and $skiptoken included): use it verbatim.
            request.url = page.next_page_token.geturl()
            request.params = {}
        return request

    # -- answers ------------------------------------------------------------------------------
    def validate_response(self, response: requests.Response) -> None:
        division = division_of(response.request.url if response.request else response.url)
        self.tap.rate_limiter.observe(division, response.status_code, response.headers)
        status = response.status_code
        if status < 400:
            page_of(response)  # a body that is no OData page is retried like a 5xx
            return
        method = response.request.method if response.request else "GET"
        where = f"{method} {self._path_of(response)}"
        message = f"{status} {response.reason} on {where}: {odata_error_text(response)}"
        if status == 429:
            retry_after = _retry_after(response)
            if retry_after is not None and retry_after > self.tap.rate_limiter.max_wait:
                # Exact blocks an app for an hour after repeated errors: waiting is pointless.
                raise FatalAPIError(f"{message} (blocked; retry after {retry_after:.0f} s)")
            raise RateLimitedError(message, response)
        if status >= 500:
            raise RetriableAPIError(message, response)
        if status == 401:
            raise UnauthorizedError(message)  # one refresh and one retry: `request_decorator`
        # Never retry a 4xx: it fails again, and repeated errors get the app blocked for an hour.
        raise FatalAPIError(message)

    @staticmethod
    def _path_of(response: requests.Response) -> str:
        # The path only: query strings are long and tokens never travel in URLs, but be tidy.
        url = response.request.url if response.request else response.url
        return (url or "").split("?", 1)[0]

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        yield from page_of(response)["results"]  # checked in validate_response

    # Records are shaped to the schema in `post_process` (records.py): the SDK's generic pass
    # over every field of every record would only repeat it, at a third of the tap's CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    # Exact's name → the record's (a contract name differs from Exact's).
    renames: ClassVar[dict[str, str]] = {}
    # Whether a record lists every schema field, null where the row lacks it.
    fill_missing: ClassVar[bool] = False

    @functools.cached_property
    def shaper(self) -> RecordShaper:
        return RecordShaper(
            self.name, self.schema,
            self.config.get("date_interpretation", "amsterdam_wall_clock"),
            renames=self.renames, fill_missing=self.fill_missing,
        )

    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict | None:
        record = self.shaper.shape(row)
        if context and record.get("Division") is None:
            record["Division"] = context[PARTITION_KEY]
        return record

    # -- pacing and retries -------------------------------------------------------------------
    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        limiter = self.tap.rate_limiter

        @functools.wraps(func)
        def paced(prepared_request: requests.PreparedRequest, context: Context | None) -> Any:
            limiter.before_request(division_of(prepared_request.url))
            try:
                return func(prepared_request, context)
            except UnauthorizedError:
                # Once only: Exact blocks an app after 10 errors per endpoint an hour.
                self.authenticator.refresh_after_unauthorized(
                    prepared_request.headers.get("Authorization"))
            limiter.before_request(division_of(prepared_request.url))
            try:
                return func(prepared_request, context)
            except UnauthorizedError as exc:
                raise UnauthorizedError(
                    f"{exc} (again with a freshly refreshed token: check the app's access in "
                    "Exact Online; re-authorize if it was revoked)") from None

        return super().request_decorator(paced)

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        initial = float(self.config.get("retry_initial_wait", 1.0))
        attempt = 0
        exception = yield  # type: ignore[misc]  # primed by `backoff`
        while True:
            attempt += 1
            if isinstance(exception, RateLimitedError) and exception.response is not None:
                wait = _retry_after(exception.response) or self.tap.rate_limiter.retry_wait(
                    division_of(exception.response.url))
            else:
                wait = initial * 2 ** (attempt - 1)
            exception = yield wait

    def backoff_max_tries(self) -> int:
        return int(self.config.get("max_retries", 5)) + 1

    def backoff_jitter(self, value: float) -> float:
        # Never earlier than asked (a rate-limit reset), at most 10% later.
        return value + random.uniform(0, 0.1 * value)

    # -- records ------------------------------------------------------------------------------
    @property
    def share_key(self) -> str:
        """Whose share of the daily budget this stream's calls use (a shared feed: one share)."""
        return self.name

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        division = (context or {}).get(PARTITION_KEY)
        if not self.in_scope(context):
            return  # not this run's (sync_scope): its state stays as it came in
        limiter = self.tap.rate_limiter
        state = self.get_context_state(context) if context else {}
        key = self.share_key
        if division in limiter.exhausted or not limiter.shares.begin(
                division, key, self._share_keys(), self._missed_turns(context)):
            # No call for it this run: counted, so it goes first when calls are scarce again.
            state[MISSED_TURNS_KEY] = int(state.get(MISSED_TURNS_KEY, 0)) + 1
            limiter.shares.end(division, key)
            return
        state.pop(MISSED_TURNS_KEY, None)
        try:
            yield from self.request_records(context)
        except (DailyLimitReached, ShareSpent) as stop:
            if isinstance(stop, ShareSpent):
                LOGGER.info("%s The rest waits for the next run.", stop)
            self.on_daily_limit(context)
        else:
            self.on_partition_complete(context)
        finally:
            limiter.shares.end(division, key)

    def in_scope(self, context: Context | None) -> bool:
        division = (context or {}).get(PARTITION_KEY)
        return division is None or self.tap.sync_scope.covers(self.name, division)

    def _share_keys(self) -> list[str]:
        """The budget shares of every selected stream, in sync order."""
        return [s.share_key for s in self.tap.streams.values()
                if isinstance(s, ExactStream) and s.selected]

    def _missed_turns(self, context: Context | None) -> dict[str, int]:
        missed: dict[str, int] = {}
        for stream in self.tap.streams.values():
            if isinstance(stream, ExactStream) and stream.selected and context:
                count = int(stream.get_context_state(context).get(MISSED_TURNS_KEY, 0))
                missed[stream.share_key] = max(missed.get(stream.share_key, 0), count)
        return missed

    def on_daily_limit(self, context: Context | None) -> None:
        """The partition stopped early (daily limit or its share of it): keep what is resumable."""

    def on_partition_complete(self, context: Context | None) -> None:
        """Every page of the partition was read and emitted."""
