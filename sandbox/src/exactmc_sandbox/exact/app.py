"""The Flask app: regions as path prefixes; faults, call counting and the error limit first.

Choices (unconfirmed): `current/Me` and the token endpoint do not count toward the rate limits
(they are not division calls); 401 and 403 answers do not count either. The token endpoint's
own ~200/day cap is not simulated. Exact documents no concurrency limit, so none is simulated:
any number of simultaneous calls is served (only the minutely/daily counts apply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request

from exactmc_sandbox.common import (
    CONTROL_PREFIX,
    CallLog,
    FaultPlan,
    apply_after_fault,
    apply_fault,
)
from exactmc_sandbox.exact.api_routes import KEYED, V1_PATH, register_api
from exactmc_sandbox.exact.errorlimit import ErrorLimiter
from exactmc_sandbox.exact.oauth import TokenAuthority
from exactmc_sandbox.exact.oauth_routes import register_oauth
from exactmc_sandbox.exact.odata import error_body
from exactmc_sandbox.exact.ratelimit import RateLimiter
from exactmc_sandbox.exact.responses import error_answer
from exactmc_sandbox.exact.store import DataStore

_OTHER_API = re.compile(r"^/[a-z]{2}/api/(?:v1/)?(?P<rest>.+)$")


@dataclass
class Components:
    store: DataStore
    authority: TokenAuthority
    limiter: RateLimiter
    calls: CallLog
    faults: FaultPlan
    errors: ErrorLimiter
    webhooks: Any = None  # exactmc_sandbox.exact.webhooks.WebhookHub, when enabled


def describe(path: str) -> tuple[str, int | None]:
    """The call-log label ("sync/CRM/Accounts", "oauth2/token", ...) and division of a path."""
    if m := V1_PATH.match(path):
        keyed = KEYED.match(m.group("rest"))
        return (keyed.group("path") if keyed else m.group("rest")), int(m.group("division"))
    if m := _OTHER_API.match(path):
        return m.group("rest"), None
    return path, None


def create_app(parts: Components) -> Flask:
    app = Flask("exactmc_sandbox.exact")
    app.config["JSON_SORT_KEYS"] = False
    _register_hooks(app, parts)
    register_oauth(app, parts.authority, parts.store)
    register_api(app, parts)
    return app


def _register_hooks(app: Flask, parts: Components) -> None:
    @app.before_request
    def _fault_first() -> Response | None:
        if request.path.startswith(CONTROL_PREFIX):
            return None
        g.label, g.division = describe(request.path)
        fault = parts.faults.take(request.method, request.path)
        if fault is None:
            blocked = parts.errors.blocked_for(g.label)
            if blocked is None:
                return None
            g.no_error_count = True
            return error_answer(429, "Too many errors on this endpoint: blocked for "
                                f"{int(blocked) + 1} s", {"Retry-After": str(int(blocked) + 1)})
        if fault.kind == "drop":
            parts.calls.record(request.method, g.label, request.path, 0, g.division)
            g.recorded = True
        response = apply_fault(fault, error_body("Injected fault"))
        g.no_error_count = response is not None  # injected answers are not the client's errors
        return response

    @app.after_request
    def _count(response: Response) -> Response:
        if not request.path.startswith(CONTROL_PREFIX) and not g.get("recorded"):
            parts.calls.record(request.method, g.get("label", request.path), request.path,
                               response.status_code, g.get("division"))
            if not g.get("no_error_count"):
                parts.errors.record(g.get("label", request.path), response.status_code)
        return apply_after_fault(response)
