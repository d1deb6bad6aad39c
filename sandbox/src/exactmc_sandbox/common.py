"""What both simulators share: the threaded server, the call log and fault injection."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from flask import Flask, Response, abort, g, jsonify, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CONTROL_PREFIX = "/_sandbox/"


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: it floods test output and the paths carry email addresses."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class ServiceServer:
    """Serve a WSGI app on 127.0.0.1 in a background thread (one thread per request)."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://{self.host}:{self._server.server_port}"

    def _bind(self) -> BaseWSGIServer:
        server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietRequestHandler
        )
        server.daemon_threads = True
        self._server = server
        return server

    def start(self) -> str:
        """Serve in a background thread (tests, benchmarks)."""
        server = self._bind()
        # Poll for shutdown every 50 ms (default 500 ms): stop() returns at once, tests stay quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Run in the foreground (the CLI)."""
        self._bind().serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


class _Startable(Protocol):
    def start(self) -> str: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Startable)


@contextlib.contextmanager
def started_sandboxes(cls: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """A factory starting `cls(**options)` sandboxes; every one started is stopped on exit."""
    started: list[S] = []

    def start(**options: Any) -> S:
        sandbox = cls(**options)
        sandbox.start()
        started.append(sandbox)
        return sandbox

    try:
        yield start
    finally:
        for sandbox in started:
            sandbox.stop()


class CallLog:
    """Counts every non-control request, by endpoint label and by division."""

    def __init__(self, keep: int = 1000) -> None:
        self._lock = threading.Lock()
        self._by_endpoint: Counter[str] = Counter()
        self._by_division: Counter[str] = Counter()
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._total = 0

    def record(
        self, method: str, endpoint: str, path: str, status: int, division: int | str | None = None
    ) -> None:
        with self._lock:
            self._total += 1
            self._by_endpoint[f"{method} {endpoint}"] += 1
            if division is not None:
                self._by_division[str(division)] += 1
            self._recent.append(
                {"method": method, "endpoint": endpoint, "path": path,
                 "division": division, "status": status, "at": time.time()}
            )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._total,
                "by_endpoint": dict(self._by_endpoint),
                "by_division": dict(self._by_division),
                "calls": list(self._recent),
            }

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_endpoint.clear()
            self._by_division.clear()
            self._recent.clear()


AFTER_KINDS = frozenset({"garble", "drop_after"})  # act on the answer, after the handler ran


@dataclass
class Fault:
    """One injected misbehaviour; `count` requests get it. Kinds:

    - `status`: answer `status` with `body` (or the API's error body) instead of serving;
    - `slow`: wait `delay` seconds (or until `release()`), then serve normally;
    - `drop`: close the connection without an answer (after `delay`), nothing served;
    - `garble`: serve normally (the change is made), then send a 2xx body cut in half, or
      `body` verbatim when it is a string (e.g. `""`): the answer no client can parse;
    - `drop_after`: serve normally (the change is made), then close the connection before the
      answer is sent: the client never learns what happened (e.g. a rotated token).
    """

    path: str
    kind: str = "status"
    method: str | None = None
    status: int = 503
    body: Any = None
    delay: float = 0.0
    count: int = 1
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    # A test ends a `slow` hold when what it waited for has happened (no racing a fixed delay).
    _released: threading.Event = field(init=False, repr=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.kind not in {"status", "slow", "drop", *AFTER_KINDS}:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and bool(
            self._pattern.search(path)
        )

    def release(self) -> None:
        """End a `slow` hold now, and any later one of this fault."""
        self._released.set()

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "method": self.method,
                "status": self.status, "delay": self.delay, "count": self.count}


class FaultPlan:
    """Faults waiting to happen, consumed first-come first-served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, **spec: Any) -> Fault:
        fault = Fault(**spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count > 0 and fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None


def drop_connection() -> None:
    """Close the client's socket without an HTTP answer (a dropped connection)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    abort(500)  # never reaches the client: the socket is gone


def apply_fault(fault: Fault, error_body: Any) -> Response | None:
    """Act out `fault`. Returns the response to send, or None to go on normally (after a delay).

    Faults that act on the answer (`AFTER_KINDS`) are remembered for `apply_after_fault`.
    """
    if fault.kind in AFTER_KINDS:
        g.after_fault = fault
        return None
    if fault.kind == "slow":
        fault._released.wait(fault.delay)
        return None
    if fault.kind == "drop":
        if fault.delay:
            time.sleep(fault.delay)
        drop_connection()
    response = jsonify(fault.body if fault.body is not None else error_body)
    response.status_code = fault.status
    return response


def apply_after_fault(response: Response) -> Response:
    """Spoil the answer of a request whose handler has run (see `Fault`); call in after_request."""
    fault: Fault | None = g.pop("after_fault", None)
    if fault is None:
        return response
    if fault.kind == "drop_after":
        # Shut the socket but leave it to werkzeug: its write then fails as a dropped connection.
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return response
    if isinstance(fault.body, str):
        response.set_data(fault.body.encode())
    else:
        data = response.get_data()
        response.set_data(data[: len(data) // 2])
    return response


def register_control_endpoints(app: Flask, calls: CallLog, faults: FaultPlan) -> None:
    """`/_sandbox/calls` and `/_sandbox/faults`, the same in both simulators."""

    @app.get("/_sandbox/calls")
    def _calls() -> Any:
        return jsonify(calls.snapshot())

    @app.post("/_sandbox/calls/reset")
    def _calls_reset() -> Any:
        calls.reset()
        return jsonify({"ok": True})

    @app.get("/_sandbox/faults")
    def _faults_list() -> Any:
        return jsonify(faults.list())

    @app.post("/_sandbox/faults")
    def _faults_add() -> Any:
        spec = request.get_json(force=True)
        specs = spec if isinstance(spec, list) else [spec]
        try:
            added = [faults.add(**s).as_dict() for s in specs]
        except (TypeError, ValueError, re.error) as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify(added), 201

    @app.delete("/_sandbox/faults")
    def _faults_clear() -> Any:
        faults.clear()
        return jsonify({"ok": True})
