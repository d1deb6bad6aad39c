"""Request helpers shared by the API handlers: JSON bodies, flags, paging, `fields` filters."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from exactmc_sandbox.mailchimp.context import RAW_BODY, ctx
from exactmc_sandbox.mailchimp.errors import ApiError, not_found
from exactmc_sandbox.mailchimp.state import AudienceList

MAX_COUNT = 1000
# json.dumps's own output, 30 % faster: answers are fresh trees, never circular (issue 9).
_encode = json.JSONEncoder(check_circular=False).encode


def json_body() -> Any:
    raw = request.environ.get(RAW_BODY)  # a batch operation's body
    if raw is None:
        raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "JSON Parse Error",
                       "We encountered an unspecified JSON parsing error.") from exc


def object_body() -> dict[str, Any]:
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid Resource", "The request body must be a JSON object.")
    return body


def flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("true", "1", "yes")


def audience(list_id: str) -> AudienceList:
    found = ctx().state.lists.get(list_id)
    if found is None:
        raise not_found()
    return found


def page(items: list[Any]) -> list[Any]:
    """`count` (default 10, at most 1000) and `offset` as Mailchimp applies them."""
    try:
        count = int(request.args.get("count", 10))
        offset = int(request.args.get("offset", 0))
    except ValueError as exc:
        raise ApiError(400, "Invalid Resource", "count and offset must be integers") from exc
    if count < 0 or offset < 0:
        raise ApiError(400, "Invalid Resource", "count and offset must not be negative")
    return items[offset: offset + min(count, MAX_COUNT)]


def _pick(data: Any, paths: list[list[str]]) -> Any:
    """Keep only dotted `paths` (lists are walked element by element)."""
    if isinstance(data, list):
        return [_pick(item, paths) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        matching = [p for p in paths if p[0] == key]
        if not matching:
            continue
        if any(len(p) == 1 for p in matching):
            out[key] = value
        else:
            out[key] = _pick(value, [p[1:] for p in matching])
    return out


def _drop(data: Any, paths: list[list[str]]) -> Any:
    if isinstance(data, list):
        return [_drop(item, paths) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        matching = [p for p in paths if p[0] == key]
        if any(len(p) == 1 for p in matching):
            continue
        out[key] = _drop(value, [p[1:] for p in matching]) if matching else value
    return out


def respond(data: Any, status: int = 200) -> Response:
    """JSON response honouring `fields` / `exclude_fields`."""
    fields = request.args.get("fields")
    excluded = request.args.get("exclude_fields")
    if fields:
        data = _pick(data, [f.strip().split(".") for f in fields.split(",") if f.strip()])
    if excluded:
        data = _drop(data, [f.strip().split(".") for f in excluded.split(",") if f.strip()])
    return Response(_encode(data), status=status, mimetype="application/json")


def no_content() -> Response:
    return Response(status=204)
