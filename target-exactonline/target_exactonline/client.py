"""Calls to Exact: the tap's authenticator and pacing, retries, and answers that must parse.

Retried (with doubling backoff, `max_retries` times): 5xx, timeouts, dropped connections and
2xx answers that are not what was asked for (garbled JSON is an error, never "no rows" and never
"written"). A minutely 429 waits for the reset Exact announces. A 401 gets one token refresh and
one retry. Any other 4xx is never retried (Exact blocks an app after 10 errors per endpoint an
hour): a refused write raises `ExactRefused`, which the caller notes in the audit trail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import requests
from tap_exactonline.auth import ExactAuthenticator
from tap_exactonline.client import division_of, odata_error_text
from tap_exactonline.rate_limit import RateLimiter

LOGGER = logging.getLogger("target_exactonline.client")
SAFE_QUERY = "$,'()"  # as the tap sends them: Exact reads its OData punctuation unescaped


class ExactRefused(Exception):
    """Exact refused a call with a 4xx that retrying will not change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ExactUnavailable(Exception):
    """Retries are exhausted (outage, garbled answers): the run must fail, not skip."""


class _Retry(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


def query_string(params: dict[str, str]) -> str:
    return urlencode(params, quote_via=quote, safe=SAFE_QUERY)


class ExactClient:
    def __init__(self, base_url: str, authenticator: ExactAuthenticator, limiter: RateLimiter,
                 *, timeout: float = 300.0, max_retries: int = 5, initial_wait: float = 1.0,
                 user_agent: str = "target-exactonline/0.1",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = f"{base_url.rstrip('/')}/api/v1"
        self.authenticator = authenticator
        self.limiter = limiter
        self.timeout = timeout
        self.max_retries = max_retries
        self.initial_wait = initial_wait
        self._sleep = sleep
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": user_agent})
        self.calls = 0

    # -- reads --------------------------------------------------------------------------------
    def rows(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every row of a list endpoint (`path` relative to /api/v1), following `__next`."""
        url: str | None = f"{self.api}/{path}?{query_string(params)}"
        while url:
            page = self._call("GET", url, None, _page)
            yield from page["results"]
            url = page.get("__next")

    # -- writes -------------------------------------------------------------------------------
    def put(self, path: str, body: dict[str, Any]) -> None:
        """A partial update; Exact answers 204 without a body."""
        self._call("PUT", f"{self.api}/{path}", body, _no_body)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A create; Exact answers 201 with the new entity."""
        return self._call("POST", f"{self.api}/{path}", body, _entity)

    # -- the one way every call goes ------------------------------------------------------------
    def _call(self, method: str, url: str, body: dict[str, Any] | None,
              read: Callable[[requests.Response], Any]) -> Any:
        division = division_of(url)
        where = f"{method} {url.split('?', 1)[0]}"
        refreshed = False
        attempt = 0
        while True:
            self.limiter.before_request(division)  # DailyLimitReached ends the run
            try:
                response = self.session.request(method, url, json=body, timeout=self.timeout,
                                                 auth=self.authenticator)
            except (requests.ConnectionError, requests.Timeout) as exc:
                error: _Retry | None = _Retry(f"{where}: no answer ({type(exc).__name__})")
            else:
                self.calls += 1
                self.limiter.observe(division, response.status_code, response.headers)
                try:
                    return self._judge(response, where, read)
                except _Retry as retry:
                    error = retry
                except _Unauthorized:
                    if refreshed:
                        raise ExactRefused(401, f"{where}: 401 again after a token refresh; "
                                           "check the app's access in Exact Online") from None
                    refreshed = True
                    self.authenticator.refresh_after_unauthorized(
                        response.request.headers.get("Authorization"))
                    continue
            attempt += 1
            if attempt > self.max_retries:
                raise ExactUnavailable(f"{error} (gave up after {attempt} tries)")
            wait = error.wait if error.wait is not None else self.initial_wait * 2 ** (attempt - 1)
            LOGGER.info("%s; retrying in %.1f s.", error, wait)
            self._sleep(wait)

    def _judge(self, response: requests.Response, where: str,
               read: Callable[[requests.Response], Any]) -> Any:
        status = response.status_code
        if status < 300:
            try:
                return read(response)
            except (ValueError, KeyError, TypeError) as exc:
                # Only the shape is described: bodies hold customer data.
                raise _Retry(f"{where}: malformed {status} answer ({exc})") from None
        message = f"{where}: {status} {odata_error_text(response)}"
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            if retry_after and retry_after.isdigit() and float(retry_after) > self.limiter.max_wait:
                raise ExactUnavailable(f"{message} (blocked for {retry_after} s)")
            wait = float(retry_after) if retry_after and retry_after.isdigit() else \
                self.limiter.retry_wait(division_of(response.url))
            raise _Retry(message, wait)
        if status >= 500:
            raise _Retry(message)
        if status == 401:
            raise _Unauthorized()
        raise ExactRefused(status, message)


class _Unauthorized(Exception):
    pass


def _page(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    data = body["d"]
    if not isinstance(data.get("results"), list) or not all(
            isinstance(row, dict) for row in data["results"]):
        raise ValueError("no `d.results` list of rows")
    if data.get("__next") is not None and not isinstance(data["__next"], str):
        raise ValueError("`d.__next` is not a URL")
    return data


def _entity(response: requests.Response) -> dict[str, Any]:
    entity = response.json()["d"]
    if not isinstance(entity, dict) or not entity.get("ID"):
        raise ValueError("no created entity with an ID")
    return entity


def _no_body(response: requests.Response) -> None:
    if response.status_code != 204 and response.content.strip():
        response.json()  # a 200 with a body must at least be JSON
