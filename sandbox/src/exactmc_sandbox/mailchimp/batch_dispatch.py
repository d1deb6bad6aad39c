"""Runs one `/batches` operation by calling its route handler directly (issue 9).

Replaying each operation as a WSGI call cost Flask's whole per-request machinery (request and
app contexts pushed and popped, session, hooks, signals, response iteration): as much CPU as
the handlers themselves. Here the route is matched once per operation and its view function
called with a bare request bound to Flask's `request` proxy, inside one app context per batch.
The answers are those of the same call over HTTP (tests/test_mailchimp_batch_dispatch.py):
handler errors become the same problem documents the app's error handlers produce. What an
operation skips is what it skipped before: the in-flight limit, latency, faults and the call
count (operations are not separate connections).

The routes bulk writes use (HOT_ENDPOINTS) go faster still: matched by a precompiled table
and called with a light request (method, path, args, environ) whose answer `respond()` hands
back unwrapped (OperationAnswer): werkzeug's matcher, Request and Response were a quarter of an
operation's CPU. Every other operation takes the werkzeug path.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from flask import Flask, Response
from flask.globals import _cv_request  # the `request` proxy's variable (Flask >= 2.3)
from werkzeug.datastructures import EnvironHeaders, ImmutableMultiDict
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import RoutingException

from exactmc_sandbox.mailchimp.context import INTERNAL_MARK, RAW_BODY, OperationAnswer
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


def _path_and_query(op: dict[str, Any]) -> tuple[str, str]:
    """The operation's path (under /3.0, percent-decoded) and query string."""
    path, _, query = str(op["path"]).partition("?")
    path = path if path.startswith("/") else "/" + path
    if not path.startswith("/3.0/"):
        path = "/3.0" + path
    params = op.get("params") or {}
    if params:
        query = "&".join(filter(None, (query, _encoded(params))))
    return unquote(path), query


_QUERIES: dict[tuple[Any, ...], str] = {}


def _encoded(params: dict[str, Any]) -> str:
    """urlencode(params), remembered: a batch's operations share their params (`fields`)."""
    if not all(type(value) is str for value in params.values()):  # 1 == True == 1.0
        return urlencode(params, doseq=True)
    key = tuple(params.items())
    query = _QUERIES.get(key)
    if query is None:
        if len(_QUERIES) > 64:
            _QUERIES.clear()
        query = _QUERIES[key] = urlencode(params, doseq=True)
    return query


def operation_environ(op: dict[str, Any], authorization: str) -> dict[str, Any]:
    """The WSGI environ of the HTTP call an operation stands for."""
    path, query = _path_and_query(op)
    body = (op.get("body") or "").encode()
    return {
        "REQUEST_METHOD": str(op["method"]).upper(), "SCRIPT_NAME": "",
        # WSGI: the path decoded, as latin-1 characters of its UTF-8 bytes.
        "PATH_INFO": path.encode().decode("latin-1"), "QUERY_STRING": query,
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost", "HTTP_AUTHORIZATION": authorization,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        INTERNAL_MARK: True, RAW_BODY: body,
    }


# The endpoints of bulk writes, served by the route table below.
HOT_ENDPOINTS = frozenset({
    "mailchimp_ecommerce.write_entity", "mailchimp_lists.post_batch_subscribe",
    "mailchimp_segments.batch_segment_members", "mailchimp_members.put_member",
    "mailchimp_members.patch_member", "mailchimp_members.update_member_tags",
})
_NAMED_PART = re.compile(r"<([a-z_]+)>")  # a rule's plain (string-converter) variable


class RouteTable:
    """The hot endpoints' rules as regular expressions: (method, path) -> (endpoint, args).

    Only rules whose variables all use the default converter (`[^/]+`, as werkzeug's) and
    whose shape no other rule shares (no static part of another rule could win, see the
    test) are in it; None sends the operation to werkzeug's matcher."""

    def __init__(self, app: Flask) -> None:
        self.routes: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for rule in app.url_map.iter_rules():
            if rule.endpoint not in HOT_ENDPOINTS:
                continue
            pattern = "".join(
                f"(?P<{part[1:-1]}>[^/]+)" if _NAMED_PART.fullmatch(part) else re.escape(part)
                for part in re.split(r"(<[^>]+>)", rule.rule))
            if "<" in pattern.replace("(?P<", ""):
                continue  # a converter with arguments: werkzeug's job
            for method in rule.methods or ():
                self.routes.setdefault(method, []).append((re.compile(pattern), rule.endpoint))

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for pattern, endpoint in self.routes.get(method, ()):
            found = pattern.fullmatch(path)
            if found is not None:
                return endpoint, found.groupdict()
        return None


_ARGS_CACHE: dict[str, ImmutableMultiDict[str, str]] = {}  # immutable: safe to share


class OperationRequest:
    """What handlers read of `request` (method, path, args, environ, headers), for a hot
    operation; `args` parsed as werkzeug parses them, once per distinct query."""

    __slots__ = ("_query", "environ", "method", "path", "url_rule", "view_args")

    def __init__(self, method: str, path: str, query: str, environ: dict[str, Any]) -> None:
        self.method = method
        self.path = path
        self._query = query
        self.environ = environ
        self.url_rule = None
        self.view_args: dict[str, str] | None = None

    @property
    def args(self) -> ImmutableMultiDict[str, str]:
        args = _ARGS_CACHE.get(self._query)
        if args is None:
            args = ImmutableMultiDict(parse_qsl(self._query, keep_blank_values=True,
                                                errors="werkzeug.url_quote"))
            if len(_ARGS_CACHE) > 64:  # ops of a batch share a few queries
                _ARGS_CACHE.clear()
            _ARGS_CACHE[self._query] = args
        return args

    @property
    def headers(self) -> EnvironHeaders:
        return EnvironHeaders(self.environ)


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
        self.table = RouteTable(app)

    def execute(self, op: dict[str, Any]) -> tuple[int, str]:
        """(status code, response text) of one operation."""
        if self.authorized:
            method = str(op["method"]).upper()
            path, query = _path_and_query(op)
            hot = self.table.match(method, path)
            if hot is not None:
                return self._execute_hot(op, method, path, query, *hot)
        return self._execute(op)

    def _execute_hot(self, op: dict[str, Any], method: str, path: str, query: str,
                     endpoint: str, args: dict[str, str]) -> tuple[int, str]:
        environ = {INTERNAL_MARK: True, RAW_BODY: (op.get("body") or "").encode(),
                   "HTTP_AUTHORIZATION": self.authorization}
        request = OperationRequest(method, path, query, environ)
        request.view_args = args
        token = _cv_request.set(_OperationContext(self.app, request))
        try:
            return _answer(self._call(self.app.view_functions[endpoint], args))
        finally:
            _cv_request.reset(token)

    def _call(self, view: Callable[..., Any], args: dict[str, str]) -> Any:
        try:
            return view(**args)
        except ApiError as exc:
            return problem_response(exc.body())
        except HTTPException as exc:
            return http_error_response(exc)
        except Exception as exc:  # as Flask does: logged, answered as a 500
            self.app.log_exception(sys.exc_info())
            return http_error_response(InternalServerError(original_exception=exc))

    def _execute(self, op: dict[str, Any]) -> tuple[int, str]:
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
        return _answer(response)

    def _respond(self, request: Any, environ: dict[str, Any]) -> Response | OperationAnswer:
        if not self.authorized:
            return unauthorized()
        try:
            rule, args = self.adapter.match(request.path, request.method, return_rule=True)
            request.url_rule, request.view_args = rule, args
            answer = self.app.view_functions[rule.endpoint](**args)
            if isinstance(answer, (Response, OperationAnswer)):
                return answer
            return self.app.make_response(answer)
        except ApiError as exc:
            return problem_response(exc.body())
        except RoutingException as exc:  # a slash redirect: Flask answers it as it is
            return exc.get_response(environ)  # type: ignore[attr-defined]
        except HTTPException as exc:
            return http_error_response(exc)
        except Exception as exc:  # as Flask does: logged, answered as a 500
            self.app.log_exception(sys.exc_info())
            return http_error_response(InternalServerError(original_exception=exc))


def _answer(response: Response | OperationAnswer) -> tuple[int, str]:
    if isinstance(response, OperationAnswer):
        return response.status_code, response.data.decode()
    return response.status_code, response.get_data(as_text=True)
