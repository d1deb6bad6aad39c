"""The swappable part of the latency bench: what receives Exact's webhooks and starts the runs.

- `service`: the webhook service, `exactmc-webhooks serve` (route `POST /exact`), which
  triggers the job itself with its default command (`env TAP_EXACTONLINE_SYNC_SCOPE=
  pending_webhooks meltano run exactonline-to-mailchimp`: only the partitions the deliveries
  named), debounced and serialised.
- `tap-loop`: the tap's own receiver, `tap-exactonline-webhooks serve`, plus a loop of the
  bench's own that starts the same job whenever the inbox holds entries (after a short quiet
  time): a stand-in that needs nothing but the tap.

Both run as separate processes with the pipeline's environment, as an operator would run them.
`Poller` emulates the 15-minute schedule (scaled down) behind either.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
JOB = "exactonline-to-mailchimp"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the receiver exited ({process.returncode}); see its log")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the receiver did not come up")


def run_job(env: dict[str, str], log: Path) -> bool:
    """One `meltano run exactonline-to-mailchimp`; its output appended to `log`."""
    with log.open("a") as out:
        done = subprocess.run([str(BIN / "meltano"), "run", JOB], cwd=ROOT, env=env,
                              stdout=out, stderr=subprocess.STDOUT, check=False)
    return done.returncode == 0


class Receiver:
    """Start/stop a receiver for one pipeline; `callback` is the URL to subscribe."""

    name = "receiver"

    def __init__(self, env: dict[str, str], workdir: Path, debounce: float) -> None:
        self.env, self.workdir, self.debounce = env, workdir, debounce
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.runs: int | None = None  # runs started, when this receiver can count them

    @property
    def inbox_url(self) -> str:
        """The tap's inbox: its setting, else its default under the pipeline's system dir."""
        return self.env.get("TAP_EXACTONLINE_WEBHOOK_INBOX_URL") or (
            f"sqlite:///{Path(self.env['MELTANO_SYS_DIR_ROOT']) / 'webhooks' / 'inbox.sqlite'}")

    @property
    def callback(self) -> str:
        return f"http://127.0.0.1:{self.port}/exact"

    def _spawn(self, args: list[str], env: dict[str, str]) -> None:
        log = (self.workdir / f"{self.name}.log").open("a")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
        wait_until_up(f"http://127.0.0.1:{self.port}/", self.process)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class ServiceReceiver(Receiver):
    """`exactmc-webhooks serve`: the webhook service triggers the job itself."""

    name = "service"

    @staticmethod
    def available() -> bool:
        return (BIN / "exactmc-webhooks").exists()

    def start(self) -> None:
        env = {
            **self.env,
            "WEBHOOKS_CLIENT_ID": self.env["TAP_EXACTONLINE_CLIENT_ID"],
            "WEBHOOKS_SECRET_STORE_PATH": self.env["TAP_EXACTONLINE_TOKEN_STORE_PATH"],
            "WEBHOOKS_INBOX_URL": self.inbox_url,
            # The service's default trigger (the job scoped to the deliveries' partitions,
            # sync_scope pending_webhooks): what a deployment runs. Its `meltano` is this one.
            "PATH": f"{BIN}{os.pathsep}{self.env.get('PATH', os.defpath)}",
            "WEBHOOKS_MAILCHIMP_TRIGGER_COMMAND": "",
            "WEBHOOKS_DEBOUNCE_SECONDS": str(self.debounce),
        }
        self._spawn([str(BIN / "exactmc-webhooks"), "serve", "--config", "ENV",
                     "--port", str(self.port)], env)


class TapLoopReceiver(Receiver):
    """`tap-exactonline-webhooks serve` and a loop running the job while the inbox is not empty."""

    name = "tap-loop"

    def start(self) -> None:
        from tap_exactonline.webhooks import WebhookInbox

        self._inbox = WebhookInbox(self.inbox_url)
        self._stopped = threading.Event()
        self.runs = 0
        self._spawn([str(BIN / "tap-exactonline-webhooks"), "serve", "--config", "ENV",
                     "--port", str(self.port)], self.env)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(0.2):
            pending = self._inbox.pending()
            if not pending:
                continue
            # Debounce: wait for a quiet moment (at most 10 s), so a burst is one run.
            newest, waited = max(e.get("received_at", 0) for e in pending), 0.0
            while time.time() - newest < self.debounce and waited < 10:
                time.sleep(0.1)
                waited += 0.1
                newest = max([newest, *(e.get("received_at", 0)
                                        for e in self._inbox.pending())])
            self.runs += 1
            run_job(self.env, self.workdir / "triggered-runs.log")  # the run clears the inbox

    def stop(self) -> None:
        if getattr(self, "_stopped", None) is not None:
            self._stopped.set()
            self._thread.join(600)
        super().stop()


RECEIVERS: dict[str, type[Receiver]] = {"service": ServiceReceiver, "tap-loop": TapLoopReceiver}


class Poller:
    """The schedule's safety net, scaled down: the job every `interval` seconds."""

    def __init__(self, env: dict[str, str], workdir: Path, interval: float) -> None:
        self.env, self.workdir, self.interval = env, workdir, interval
        self.runs = self.refused = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            self.runs += 1
            # Refused (exit 1) when a triggered run holds the company's run lock, as a real
            # scheduled run would be: the next period tries again.
            if not run_job(self.env, self.workdir / "polling-runs.log"):
                self.refused += 1

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(600)


def describe(receiver: Receiver, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"receiver": receiver.name, "callback": receiver.callback, **(extra or {})}
