"""Answers in Exact's formats: JSON for clients that ask for it, Atom/XML otherwise."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from exactmc_sandbox.exact.odata import error_body, xml_answer


def wants_json() -> bool:
    return "application/json" in request.headers.get("Accept", "")


def answer(payload: Any, status: int = 200, headers: dict[str, str] | None = None,
           title: str = "") -> Response:
    if wants_json():
        body = json.dumps(payload, ensure_ascii=False)
        response = Response(body, status, mimetype="application/json")
    else:
        results = payload.get("d", {}) if isinstance(payload, dict) else {}
        rows = results.get("results") if isinstance(results, dict) else None
        response = Response(xml_answer(title, rows if rows is not None else [results]), status,
                            content_type="application/atom+xml;type=feed;charset=utf-8")
    response.headers.update(headers or {})
    return response


def json_page(rows: list[str], next_url: str | None, headers: dict[str, str] | None = None
              ) -> Response:
    """A list page answered as JSON from its rows' JSON texts: the bytes `answer` gives for
    `{"d": {"results": rows, "__next": next_url}}` (`json.dumps` joins with ", " and ": ")."""
    # Each row encoded alone: most are ASCII (a copy), where one non-ASCII row made the
    # whole page's text costly to encode; the page then built in one join (one large buffer).
    end = b"]"
    if next_url is not None:
        end += b', "__next": ' + json.encoder.encode_basestring(next_url).encode()
    parts = [row.encode() for row in rows] or [b""]
    parts[0] = b'{"d": {"results": [' + parts[0]
    parts[-1] += end + b"}}"
    response = Response(b", ".join(parts), 200, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def error_answer(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if wants_json():
        response = Response(json.dumps(error_body(message)), status, mimetype="application/json")
    else:
        response = Response(xml_answer("", None, error=message), status,
                            content_type="application/xml;charset=utf-8")
    response.headers.update(headers or {})
    return response
