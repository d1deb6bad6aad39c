"""Mailchimp's errors: `application/problem+json` with type, title, status, detail, instance."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Response, request
from werkzeug.exceptions import HTTPException

DOCS = "https://mailchimp.com/developer/marketing/docs/errors/"
HTTP_TITLES = {404: "Resource Not Found", 405: "Method Not Allowed",
               429: "Too Many Requests", 500: "Internal Server Error"}


class ApiError(Exception):
    """Raised anywhere in a handler; turned into a problem+json response by the app."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return problem_body(self.status, self.title, self.detail, self.errors)


def problem_body(
    status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": DOCS,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body), status=body["status"], mimetype="application/problem+json"
    )


def not_found(detail: str = "The requested resource could not be found.") -> ApiError:
    return ApiError(404, "Resource Not Found", detail)


def invalid(detail: str, errors: list[dict[str, str]] | None = None) -> ApiError:
    return ApiError(400, "Invalid Resource", detail, errors)


def merge_fields_invalid(errors: list[dict[str, str]]) -> ApiError:
    return ApiError(400, "Invalid Resource", "Your merge fields were invalid.", errors)


def schema_invalid(errors: list[dict[str, str]]) -> ApiError:
    return invalid(
        "The resource submitted could not be validated. For field-specific details, "
        "see the 'errors' array.",
        errors,
    )


def http_error_response(exc: HTTPException) -> Response:
    """The problem document for a werkzeug error (no route, wrong method, 500...)."""
    status = exc.code or 500
    return problem_response(problem_body(
        status, HTTP_TITLES.get(status, exc.name), exc.description or exc.name))


def unauthorized() -> Response:
    return problem_response(problem_body(
        401, "API Key Invalid", "Your request did not include an API key."
        if not request.headers.get("Authorization")
        else "Your API key may be invalid, or you've attempted to access the wrong datacenter."))
