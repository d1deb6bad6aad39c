"""Runs one `/batches` operation by calling its route handler directly (issue 9).

Replaying each operation as a WSGI call cost Flask's whole per-request machinery (request and
app contexts pushed and popped, session, hooks, signals, response iteration): as much CPU as
the handlers themselves. Here the route is matched once per operation and its view function
called with a bare request bound to Flask's `request` proxy, inside one app context per batch.
The answers are those of the same call over HTTP (tests/test_mailchimp_batch_dispatch.py):
handler errors become the same problem documents the app's error handlers produce. What an
operation skips is what it skipped before: the in-flight limit, latency, faults and the call
count (operations are not separate connections).
"""

from __future__ import annotations

import io
import sys
from typing import Any
from urllib.parse import unquote, urlencode

from flask import Flask, Response
from flask.globals import _cv_request  # the `request` proxy's variable (Flask >= 2.3)
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import RoutingException

from exactmc_sandbox.mailchimp.context import INTERNAL_MARK, RAW_BODY
from exactmc_sandbox.mailchimp.errors import (
    ApiError,
    http_error_response,
    problem_response,
    unauthorized,
)


class _OperationContext:
    """What Flask's `request` proxy reads (`.request`); nothing else is used by handlers."""

    __slots__ = ("app", "request", "session")

    def __init__(self, app: Flask, request: Any) -> None:
        self.app = app
        self.request = request
        self.session = None


def operation_environ(op: dict[str, Any], authorization: str) -> dict[str, Any]:
    """The WSGI environ of the HTTP call an operation stands for."""
    path, _, query = str(op["path"]).partition("?")
    path = path if path.startswith("/") else "/" + path
    if not path.startswith("/3.0/"):
        path = "/3.0" + path
    params = op.get("params") or {}
    if params:
        query = "&".join(filter(None, (query, urlencode(params, doseq=True))))
    body = (op.get("body") or "").encode()
    return {
        "REQUEST_METHOD": str(op["method"]).upper(), "SCRIPT_NAME": "",
        # WSGI: the path decoded, as latin-1 characters of its UTF-8 bytes.
        "PATH_INFO": unquote(path).encode().decode("latin-1"), "QUERY_STRING": query,
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost", "HTTP_AUTHORIZATION": authorization,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        INTERNAL_MARK: True, RAW_BODY: body,
    }


class OperationDispatcher:
    """Calls operations' handlers for one batch; use inside `app.app_context()`.

    The submitter's credential is checked once, when the batch starts: every operation of a
    batch carries the same Authorization header, and keys are not revoked mid-batch here.
    """

    def __init__(self, app: Flask, authorization: str, authorized: bool) -> None:
        self.app = app
        self.authorization = authorization
        self.authorized = authorized
        self.adapter = app.url_map.bind("localhost", url_scheme="http")

    def execute(self, op: dict[str, Any]) -> tuple[int, str]:
        """(status code, response text) of one operation."""
        environ = operation_environ(op, self.authorization)
        request = self.app.request_class(environ)
        token = _cv_request.set(_OperationContext(self.app, request))  # type: ignore[arg-type]
        try:
            response = self._respond(request, environ)
        finally:
            _cv_request.reset(token)
            request.close()
            # As Flask does on pop: the request and its environ point at each other, a cycle
            # only the garbage collector would free (+24 MB peak at 10k accounts).
            environ["werkzeug.request"] = None
        return response.status_code, response.get_data(as_text=True)

    def _respond(self, request: Any, environ: dict[str, Any]) -> Response:
        if not self.authorized:
            return unauthorized()
        try:
            rule, args = self.adapter.match(request.path, request.method, return_rule=True)
            request.url_rule, request.view_args = rule, args
            answer = self.app.view_functions[rule.endpoint](**args)
            return answer if isinstance(answer, Response) else self.app.make_response(answer)
        except ApiError as exc:
            return problem_response(exc.body())
        except RoutingException as exc:  # a slash redirect: Flask answers it as it is
            return exc.get_response(environ)  # type: ignore[attr-defined]
        except HTTPException as exc:
            return http_error_response(exc)
        except Exception as exc:  # as Flask does: logged, answered as a 500
            self.app.log_exception(sys.exc_info())
            return http_error_response(InternalServerError(original_exception=exc))
