"""The webhook receiver (`tap-exactonline-webhooks serve`, a real process) under attack,
over plain sockets: huge and lying bodies, slow clients, a replayed signed delivery."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import secrets
import socket
import subprocess
import time
from pathlib import Path

from e2e_pipeline import ROOT, find_secrets
from tap_exactonline.webhooks import WebhookInbox

from reliability.case_spec import Case
from reliability.stage import Stage
from reliability.verdict import Outcome

EXECUTABLE = ROOT / ".meltano" / "extractors" / "tap-exactonline" / "venv" / "bin" / (
    "tap-exactonline-webhooks")
CLIENT_TIMEOUT = 2  # seconds a silent connection may live (webhook_client_timeout)
HUGE = 50 * 1024 * 1024
MEMORY_GROWTH_LIMIT = 40 * 1024 * 1024
THREAD_LIMIT = 40
SLOW_CLIENTS = 150


class Receiver:
    """The receiver process on a free port, its inbox in `workdir`."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.secret = secrets.token_hex(16)
        self.inbox = workdir / "webhook-inbox.sqlite"
        self.port = _free_port()
        env = {**os.environ, "TAP_EXACTONLINE_WEBHOOK_SECRET": self.secret,
               "TAP_EXACTONLINE_WEBHOOK_INBOX_URL": f"sqlite:///{self.inbox}",
               "TAP_EXACTONLINE_WEBHOOK_CLIENT_TIMEOUT": str(CLIENT_TIMEOUT)}
        self.log = workdir / "webhook-receiver.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(EXECUTABLE), "serve", "--config", "ENV", "--host", "127.0.0.1",
                 "--port", str(self.port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError("the webhook receiver did not start: "
                           + self.log.read_text(errors="replace")[-500:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def status(self, field: str) -> int:
        """VmRSS (bytes) or Threads of the receiver, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                value = int(line.split()[1])
                return value * 1024 if field == "VmRSS" else value
        return 0

    def delivery(self, key: str) -> bytes:
        """A delivery signed as Exact signs it: HMAC-SHA256 of the raw Content, upper-case hex."""
        content = json.dumps({"Topic": "Accounts", "ClientId": "client", "Division": 101,
                              "Action": "Update", "Key": key,
                              "EventCreatedOn": "2025-06-01T10:00:00"}).encode()
        signature = hmac.new(self.secret.encode(), content, hashlib.sha256).hexdigest().upper()
        return b'{"Content":' + content + b',"HashCode":"' + signature.encode() + b'"}'

    def entries(self, key: str) -> int:
        return sum(1 for entry in WebhookInbox(self.inbox).pending() if entry.get("Key") == key)

    def raw(self, head: bytes, body: bytes = b"", timeout: float = 10) -> int | None:
        """Send a raw request; the answer's status, or None when the connection just closed."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(head + body)
            return _status_of(sock)

    def post(self, body: bytes, timeout: float = 10) -> int | None:
        head = (b"POST /webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        return self.raw(head, body, timeout)


def _status_of(sock: socket.socket) -> int | None:
    try:
        first = sock.recv(64)
    except OSError:
        return None
    parts = first.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def attack(factories: object, workdir: Path, rng: random.Random) -> Outcome:
    receiver = Receiver(workdir)
    outcome = Outcome("webhook: receiver attacks", tried=0)
    try:
        for name, check in ATTACKS:
            outcome.tried += 1
            try:
                problem = check(receiver, rng)
            except Exception as exc:  # an attack that breaks the harness is a failure too
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                figure = "duplicated" if name == "replay" else "wrong"
                outcome.add(figure, f"{name}: {problem}")
        if receiver.process.poll() is not None:
            outcome.add("wrong", f"the receiver died (exit {receiver.process.returncode})")
    finally:
        receiver.stop()
    for finding in find_secrets([workdir], {"webhook_secret": receiver.secret}):
        outcome.add("secrets_found", finding)
    return outcome


def _valid(receiver: Receiver, rng: random.Random) -> str | None:
    status = receiver.post(receiver.delivery("valid-key"))
    if status != 200 or receiver.entries("valid-key") != 1:
        return f"a valid delivery got {status}, {receiver.entries('valid-key')} inbox entries"
    return None


def _replay(receiver: Receiver, rng: random.Random) -> str | None:
    delivery = receiver.delivery("replayed-key")
    statuses = {receiver.post(delivery) for _ in range(20)}
    entries = receiver.entries("replayed-key")
    if entries != 1 or not statuses <= {200, 204}:
        return f"20 copies of one signed delivery: answers {sorted(map(str, statuses))}, " \
               f"{entries} inbox entries (want 1)"
    return None


def _forged(receiver: Receiver, rng: random.Random) -> str | None:
    forged = receiver.delivery("forged-key").replace(b'"HashCode":"', b'"HashCode":"00')
    status = receiver.post(forged)
    if status not in {400, 401, 403} or receiver.entries("forged-key"):
        return f"a forged signature got {status}"
    return None


def _huge(receiver: Receiver, rng: random.Random) -> str | None:
    before = receiver.status("VmRSS")
    chunk = b"x" * (1024 * 1024)
    statuses = []
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(HUGE).encode() + b"\r\n\r\n")
            with contextlib.suppress(OSError):
                for _ in range(HUGE // len(chunk)):
                    sock.sendall(chunk)
            statuses.append(_status_of(sock))
    growth = receiver.status("VmRSS") - before
    if growth > MEMORY_GROWTH_LIMIT or any(s not in {None, 413} for s in statuses):
        return f"3 x 50 MB bodies: answers {statuses}, memory grew {growth // 2**20} MB"
    return None


def _lying_length(value: bytes) -> object:
    def check(receiver: Receiver, rng: random.Random) -> str | None:
        head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + value + b"\r\n\r\n")
        started = time.monotonic()
        status = receiver.raw(head, b'{"Content":', timeout=CLIENT_TIMEOUT + 8)
        if status != 400:
            return f"Content-Length {value.decode()}: answer {status} after " \
                   f"{time.monotonic() - started:.1f} s (want 400)"
        return None

    return check


def _slow_clients(receiver: Receiver, rng: random.Random) -> str | None:
    slow = []
    problems = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = socket.create_connection(("127.0.0.1", receiver.port), timeout=5)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # and then nothing more
            slow.append(sock)
        threads = receiver.status("Threads")
        if threads > THREAD_LIMIT:
            problems.append(f"{threads} threads for {SLOW_CLIENTS} slow clients")
        started = time.monotonic()
        status = receiver.post(receiver.delivery("while-slow"), timeout=CLIENT_TIMEOUT + 10)
        if status != 200:
            problems.append(f"a valid delivery among slow clients got {status} after "
                            f"{time.monotonic() - started:.1f} s")
        time.sleep(CLIENT_TIMEOUT + 3)
        still_open = 0
        for sock in slow:
            sock.settimeout(0.05)
            try:
                still_open += sock.recv(1) != b""
            except TimeoutError:
                still_open += 1
            except OSError:
                pass
        if still_open:
            problems.append(f"{still_open} silent connections still open after "
                            f"{CLIENT_TIMEOUT + 3} s")
    finally:
        for sock in slow:
            sock.close()
    return "; ".join(problems) or None


ATTACKS = [
    ("valid delivery", _valid),
    ("replay", _replay),
    ("forged signature", _forged),
    ("50 MB bodies", _huge),
    ("Content-Length -1", _lying_length(b"-1")),
    ("Content-Length abc", _lying_length(b"abc")),
    ("slow clients", _slow_clients),
]


def _unused(stage: Stage, rng: random.Random) -> None:
    raise AssertionError("custom cases play themselves")


WEBHOOKS = [Case("webhook: receiver attacks", "webhook", _unused, custom=attack)]
