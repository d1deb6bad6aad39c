"""The Flask app: authentication, the in-flight limit, faults, call counting and the routes."""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from exactmc_sandbox.common import (
    CONTROL_PREFIX,
    apply_after_fault,
    apply_fault,
    register_control_endpoints,
)
from exactmc_sandbox.mailchimp import (
    batches,
    control_api,
    ecommerce_api,
    lists_api,
    members_api,
    segments_api,
    webhooks_api,
)
from exactmc_sandbox.mailchimp.context import EXTENSION_KEY, INTERNAL_MARK, MailchimpContext
from exactmc_sandbox.mailchimp.errors import (
    HTTP_TITLES,
    ApiError,
    http_error_response,
    problem_body,
    problem_response,
    unauthorized,
)

API_PREFIX = "/3.0"
BATCH_RESULTS_PREFIX = CONTROL_PREFIX + "batch-results/"


def endpoint_label() -> str:
    """"PUT /lists/*/members/*": the route with its variable parts starred."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    if rule.startswith(API_PREFIX):
        rule = rule[len(API_PREFIX):] or "/"
    # `<kind>` (customers/products/orders) names a collection, not an id: keep it readable.
    kind = (request.view_args or {}).get("kind")
    if kind:
        rule = rule.replace("<kind>", str(kind))
    return re.sub(r"<[^>]+>", "*", rule)


def _guard() -> Response | None:
    """Runs before every request: the order is auth, in-flight limit, latency, faults."""
    context: MailchimpContext = g.context
    if request.path.startswith(BATCH_RESULTS_PREFIX):
        return _fault()  # stands in for Mailchimp's storage host: it can misbehave too
    if request.path.startswith(CONTROL_PREFIX):
        return None
    internal = bool(request.environ.get(INTERNAL_MARK))
    g.counted = not internal
    # /oauth2/metadata (the login host) authenticates itself and has no connection limit.
    if request.path.startswith(API_PREFIX + "/") or request.path == API_PREFIX:
        credential = context.auth.identify(request.headers.get("Authorization"))
        if credential is None:
            return unauthorized()
        if internal:
            return None
        if not context.limiter.acquire(credential):
            return problem_response(problem_body(
                429, "Too Many Requests",
                "You have exceeded the limit of 10 simultaneous connections."))
        g.in_flight_credential = credential
        if context.settings.latency:
            time.sleep(context.settings.latency)
    return _fault()


def _fault() -> Response | None:
    fault = g.context.faults.take(request.method, request.path)
    if fault is not None:
        response = apply_fault(fault, problem_body(
            fault.status, HTTP_TITLES.get(fault.status, "Service Unavailable"),
            "An injected fault from the sandbox."))
        if response is not None and fault.body is None:
            response.mimetype = "application/problem+json"
        return response
    return None


def create_app(context: MailchimpContext) -> Flask:
    app = Flask("exactmc_sandbox.mailchimp")
    app.extensions[EXTENSION_KEY] = context
    context.batches = batches.BatchRunner(app, context)
    webhooks_api.connect(context)

    @app.before_request
    def _before() -> Response | None:
        g.context = context
        return _guard()

    @app.after_request
    def _count(response: Response) -> Response:
        if g.get("counted"):
            context.calls.record(request.method, endpoint_label(), request.path,
                                 response.status_code)
        return apply_after_fault(response)

    @app.teardown_request
    def _release(_exc: BaseException | None) -> None:
        credential = g.pop("in_flight_credential", None)
        if credential is not None:
            context.limiter.release(credential)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return problem_response(exc.body())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return http_error_response(exc)

    register_control_endpoints(app, context.calls, context.faults)
    for module in (lists_api, members_api, segments_api, ecommerce_api, webhooks_api,
                   batches, control_api):
        app.register_blueprint(module.bp)
    return app
