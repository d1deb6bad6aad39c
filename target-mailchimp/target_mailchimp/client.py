"""HTTP client for the Mailchimp Marketing API: bounded concurrency, retries, typed errors."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import logging
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import backoff
import msgspec
import requests
from requests.adapters import HTTPAdapter

LOGGER = logging.getLogger("target_mailchimp.client")
# Mailchimp refuses the 11th simultaneous connection per API key.
MAX_IN_FLIGHT_LIMIT = 10
REQUEST_TIMEOUT_SECONDS = 120.0

T = TypeVar("T")
R = TypeVar("R")
# Keys an answer must hold, with their type(s): `{"members": list}`.
Expect: TypeAlias = Mapping[str, type | tuple[type, ...]]


class MailchimpError(Exception):
    """Base class of everything this client raises."""


class ApiError(MailchimpError):
    """Mailchimp refused one request (4xx): a problem with that record, not with the run."""

    def __init__(self, status: int, title: str, detail: str, errors: list | None = None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        super().__init__(self.summary())

    @classmethod
    def from_body(cls, status: int, body: Any) -> ApiError:
        body = body if isinstance(body, dict) else {}
        return cls(
            status,
            str(body.get("title") or "Error"),
            str(body.get("detail") or ""),
            body.get("errors") if isinstance(body.get("errors"), list) else None,
        )

    def summary(self) -> str:
        """Short, secret-free text for the audit trail."""
        text = f"{self.status} {self.title}: {self.detail}".strip()
        fields = "; ".join(
            f"{e.get('field', '')}: {e.get('message', '')}"
            for e in self.errors
            if isinstance(e, dict)
        )
        return f"{text} [{fields}]" if fields else text


class OutageError(MailchimpError):
    """Mailchimp cannot be used right now (retries exhausted, credentials refused).

    Raised out of the sink on purpose: the run stops and STATE is not advanced.
    """


class _Retryable(Exception):
    """Internal: a response or transport failure worth another try."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def json_default(value: Any) -> Any:
    """singer-sdk hands us Decimals and datetimes; Mailchimp wants numbers and ISO strings."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(default=json_default)  # made once, not per call (same text)
# Issue 9: request bodies (a /batches job holds a drain's records) were a twentieth of the
# target's CPU in json.dumps; msgspec is ~5x faster. Decimals go as the numbers they are
# (their own text: 12.50, not 12.5), text as UTF-8; datetimes (none in our bodies: dates are
# made text by `values.iso`) as RFC 3339, which Mailchimp reads as well.
_BODY_ENCODER = msgspec.json.Encoder(enc_hook=json_default, decimal_format="number")


def dumps(value: Any) -> str:
    """JSON text as json.dumps writes it (the audit trail's payloads keep their form)."""
    return _ENCODER.encode(value)


def dumpb(value: Any) -> bytes:
    """A request body: UTF-8 JSON bytes, made by msgspec."""
    return _BODY_ENCODER.encode(value)


class MailchimpClient:
    """One per run. Thread-safe; a shared semaphore keeps at most `max_in_flight` requests open."""

    def __init__(
        self,
        base_url: str,
        auth: requests.auth.AuthBase,
        *,
        max_in_flight: int = MAX_IN_FLIGHT_LIMIT,
        max_tries: int = 8,
        backoff_factor: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_in_flight = max(1, min(int(max_in_flight), MAX_IN_FLIGHT_LIMIT))
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = auth
        self._session.headers["User-Agent"] = "target-mailchimp"
        adapter = HTTPAdapter(pool_maxsize=self.max_in_flight, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        retrying = backoff.on_exception(
            backoff.expo,
            _Retryable,
            max_tries=max_tries,
            factor=backoff_factor,
            max_value=backoff_max,
            jitter=backoff.full_jitter,
            on_backoff=self._log_retry,
            raise_on_giveup=True,
        )
        self._send_with_retries = retrying(self._send_once)
        self._download_with_retries = retrying(self._download_once)

    @staticmethod
    def _log_retry(details: dict[str, Any]) -> None:
        exc = details.get("exception")
        args = details["args"]
        # A path, never a download URL: a pre-signed one carries its signature.
        what = args[1] if len(args) > 1 and isinstance(args[1], str) else "batch results"
        LOGGER.warning(
            "Retrying %s after %s (try %d, waiting %.2fs)",
            what,
            getattr(exc, "reason", "error"),
            details["tries"],
            details.get("wait", 0.0),
        )

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        expect: Expect | None = None,
    ) -> Any:
        """Send one request; returns the decoded JSON object (None only for a 204).

        `expect` names keys (and their types) the answer must have: without them it is
        unreadable, like a cut-off body, and retried; it is never taken for "no data".
        Raises ApiError for a 4xx about this request, OutageError when Mailchimp is unusable.
        """
        try:
            return self._send_with_retries(method.upper(), path, params, body, expect)
        except _Retryable as exc:
            raise OutageError(
                f"Mailchimp unavailable: {method.upper()} {path} failed after retries "
                f"({exc.reason})"
            ) from None

    def _send_once(
        self, method: str, path: str, params: dict[str, Any] | None, body: Any,
        expect: Expect | None,
    ) -> Any:
        # Bytes: a body encoded already (a /batches job's, built one operation at a time).
        data = body if isinstance(body, bytes) else dumpb(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        with self._slots:
            try:
                response = self._session.request(
                    method, self.url(path), params=params, data=data,
                    headers=headers, timeout=self._timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # Class name only: the message could carry the URL and proxy details.
                raise _Retryable(type(exc).__name__) from None
        return self._decode(response, expect)

    @staticmethod
    def _decode(response: requests.Response, expect: Expect | None = None) -> Any:
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}")
        if status >= 400:
            body = _json_or_none(response)
            if status in (401, 403):
                error = ApiError.from_body(status, body)
                raise OutageError(f"Mailchimp refused the credentials: {error.summary()}")
            raise ApiError.from_body(status, body)
        if status == 204:
            return None  # the one legitimately empty answer
        body = _json_or_none(response)
        if not isinstance(body, dict) or status < 200 or status >= 300:
            # Cut off, empty or not JSON: the request may well have worked, but an answer we
            # cannot read must not pass for an empty one.
            raise _Retryable(f"unreadable answer (HTTP {status})")
        for key, kind in (expect or {}).items():
            if not isinstance(body.get(key), kind):
                raise _Retryable(f"answer without {key!r} (HTTP {status})")
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def paginate(
        self, path: str, items_key: str, params: dict[str, Any] | None = None,
        page_size: int = 1000,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a `count`/`offset` collection."""
        offset = 0
        while True:
            page = self.request(
                "GET", path, params={**(params or {}), "count": page_size, "offset": offset},
                expect={items_key: list},
            )
            items = page[items_key]
            yield from items
            offset += len(items)
            total = page.get("total_items")
            if not items or len(items) < page_size or (total is not None and offset >= total):
                return

    def download(self, url: str, read: Callable[[bytes], T]) -> T:
        """Fetch a batch result archive and `read` it, retrying like any other request.

        `read` raises ValueError (or tarfile/zlib/EOF errors) for a cut-off archive: that is
        retried, never taken for an empty result. Real Mailchimp serves these from a
        pre-signed storage URL: our credentials must not travel to another host, so auth is
        only sent when the host is the API's own.
        """
        try:
            return self._download_with_retries(url, read)
        except _Retryable as exc:
            raise OutageError(f"Cannot download batch results ({exc.reason})") from None

    def _download_once(self, url: str, read: Callable[[bytes], T]) -> T:
        same_host = urlsplit(url).netloc == urlsplit(self.base_url).netloc
        with self._slots:
            try:
                if same_host:
                    response = self._session.get(url, timeout=self._timeout)
                else:
                    response = requests.get(url, timeout=self._timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _Retryable(type(exc).__name__) from None
        if response.status_code >= 400:
            # Transient on a storage host too (the link is valid for hours).
            raise _Retryable(f"HTTP {response.status_code}")
        try:
            return read(response.content)
        except (ValueError, EOFError, OSError, tarfile.TarError, zlib.error):
            raise _Retryable("unreadable archive") from None

    def map_parallel(self, func: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run `func` over `items` with at most `max_in_flight` at once, results in order."""
        items = list(items)
        if len(items) <= 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
            return list(pool.map(func, items))

    def close(self) -> None:
        self._session.close()
