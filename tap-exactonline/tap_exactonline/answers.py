"""Reading Exact's 2xx answers: parsed once, and a body that is not an OData page is an error.

Every call the tap makes reads a list: `{"d": {"results": [...], "__next": "..."}}`. A body that
does not parse (cut off, empty, XML — Exact's default without `Accept`), or parses into anything
else, must never pass for "no rows": it is retried like a 5xx, then fails the run.
"""

from __future__ import annotations

import codecs
from decimal import Decimal
from typing import Any

import msgspec
import requests
from singer_sdk.exceptions import RetriableAPIError

# Where the parsed page is kept on the response, so pagination does not parse it again.
_PAYLOAD_ATTR = "_tap_exactonline_payload"
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


class MalformedAnswerError(RetriableAPIError):
    """A 2xx answer whose body is not the OData page that was asked for."""


def page_of(response: requests.Response) -> dict[str, Any]:
    """The answer's `d` object (`results` a list of rows, `__next` absent or a URL)."""
    cached = response.__dict__.get(_PAYLOAD_ATTR)
    if cached is None:
        cached = response.__dict__[_PAYLOAD_ATTR] = _parse(response)
    return cached


def _parse(response: requests.Response) -> dict[str, Any]:
    try:
        # Amounts exactly as Exact sent them (Decimal from the digits); msgspec parses a page
        # several times faster than requests' json. Invalid UTF-8 and NaN are no JSON either.
        content = response.content
        if content.startswith(codecs.BOM_UTF8):  # requests' json allowed one: so do we
            content = content[len(codecs.BOM_UTF8):]
        body = _DECODER.decode(content)
    except ValueError:  # msgspec's DecodeError and UnicodeDecodeError both are
        raise _malformed(response, "the body is not JSON") from None
    data = body.get("d") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise _malformed(response, "no `d` object")
    results = data.get("results")
    if not isinstance(results, list) or not all(isinstance(row, dict) for row in results):
        raise _malformed(response, "no `d.results` list of rows")
    next_url = data.get("__next")
    if next_url is not None and not isinstance(next_url, str):
        raise _malformed(response, "`d.__next` is not a URL")
    return data


def _malformed(response: requests.Response, why: str) -> MalformedAnswerError:
    # Only the shape is described: the body itself holds customer data.
    url = response.request.url if response.request else response.url
    path = (url or "").split("?", 1)[0]
    kind = response.headers.get("Content-Type") or "no content type"
    return MalformedAnswerError(
        f"Malformed {response.status_code} answer on GET {path}: {why} "
        f"({kind}, {len(response.content)} bytes).",
        response,
    )
