"""HTTP client for the Mailchimp Marketing API reads: paging, retries, unreadable answers.

Rules shared with target-mailchimp's client: a 2xx body that does not parse, or lacks the
collection asked for, is a retried error and never "no data" (an empty page read as the end
would move a bookmark past opt-outs never seen); 429, 5xx, timeouts and dropped connections
are retried with backoff; a 4xx stops the run. The tap reads one page at a time over one
connection, well under Mailchimp's 10 simultaneous connections per key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import backoff
import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

LOGGER = logging.getLogger("tap_mailchimp.client")
PAGE_SIZE = 1000  # Mailchimp's largest `count`


class MailchimpReadError(Exception):
    """Mailchimp refused the request or stayed unusable after retries: the run fails."""


class _Retryable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MailchimpReader:
    def __init__(self, base_url: str, auth: AuthBase, *, max_tries: int = 8,
                 backoff_factor: float = 1.0, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = auth
        self._session.headers["User-Agent"] = "tap-mailchimp"
        adapter = HTTPAdapter(pool_maxsize=1, max_retries=0)  # one connection, one page at a time
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._get_with_retries = backoff.on_exception(
            backoff.expo, _Retryable, max_tries=max(1, max_tries), factor=backoff_factor,
            max_value=60.0, jitter=backoff.full_jitter, on_backoff=self._log_retry,
        )(self._get_once)
        self.requests_sent = 0

    @staticmethod
    def _log_retry(details: dict[str, Any]) -> None:
        LOGGER.warning("Retrying %s after %s (try %d, waiting %.2fs)", details["args"][1],
                       getattr(details.get("exception"), "reason", "error"), details["tries"],
                       details.get("wait", 0.0))

    def get(self, path: str, params: dict[str, Any], items_key: str) -> dict[str, Any]:
        """One page; its `items_key` is always a list when this returns."""
        try:
            return self._get_with_retries(path, params, items_key)
        except _Retryable as exc:
            raise MailchimpReadError(
                f"Mailchimp unavailable: GET {path} failed after retries ({exc.reason})") from None

    def _get_once(self, path: str, params: dict[str, Any], items_key: str) -> dict[str, Any]:
        self.requests_sent += 1
        try:
            response = self._session.get(f"{self.base_url}/{path.lstrip('/')}", params=params,
                                         timeout=self._timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(type(exc).__name__) from None  # no message: it may carry the URL
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}")
        body = _json_or_none(response)
        if status >= 400:
            detail = body.get("detail") if isinstance(body, dict) else ""
            raise MailchimpReadError(f"Mailchimp refused GET {path}: HTTP {status} {detail}")
        if not isinstance(body, dict) or not 200 <= status < 300:
            raise _Retryable(f"unreadable answer (HTTP {status})")
        if not isinstance(body.get(items_key), list):
            raise _Retryable(f"answer without {items_key!r} (HTTP {status})")
        return body

    def paginate(self, path: str, items_key: str, params: dict[str, Any],
                 page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every item of a `count`/`offset` collection."""
        offset = 0
        while True:
            page = self.get(path, {**params, "count": page_size, "offset": offset}, items_key)
            items = page[items_key]
            yield from items
            offset += len(items)
            total = page.get("total_items")
            if not items or len(items) < page_size or (
                    isinstance(total, int) and offset >= total):
                return


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None
