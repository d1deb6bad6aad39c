"""Measuring processes for the scale benchmark: sandboxes as processes, one command under
`/usr/bin/time -v`, a process tree polled with psutil (peak RSS and CPU by role)."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
POLL_SECONDS = 0.5
# A process's role by what its command line names (a plugin's venv path names the plugin).
ROLES = (("mapper-exact-mailchimp", "mapper"), ("tap-exactonline", "tap"),
         ("target-mailchimp", "target"), ("meltano", "meltano"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def role_of(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    return next((role for needle, role in ROLES if needle in text), "other")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@dataclass
class Sandbox:
    """One simulator started as its own process (so its CPU and RSS are its own)."""

    name: str
    url: str
    popen: subprocess.Popen[bytes]
    process: psutil.Process = field(init=False)
    peak_rss: int = 0

    def __post_init__(self) -> None:
        self.process = psutil.Process(self.popen.pid)

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.url}/_sandbox/{path}", timeout=120, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def cpu(self) -> float:
        return cpu_seconds(self.process)

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):  # it may have just exited
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def start_sandbox(name: str, args: list[str], env: dict[str, str], log: Path,
                  timeout: float = 900) -> Sandbox:
    """`exactmc-sandbox <name> …` on a free port; waits until it answers (seeding 100k accounts
    takes a while)."""
    port = free_port()
    with log.open("ab") as out:
        popen = subprocess.Popen([str(BIN / "exactmc-sandbox"), name, "--port", str(port), *args],
                                 stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    box = Sandbox(name, f"http://127.0.0.1:{port}", popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise SystemExit(f"The {name} sandbox exited early (code {popen.returncode}); {log}")
        try:
            requests.get(f"{box.url}/_sandbox/calls", timeout=2)
            return box
        except requests.ConnectionError:
            time.sleep(0.3)
    box.stop()
    raise SystemExit(f"The {name} sandbox did not come up within {timeout:.0f} s; {log}")


_S = TypeVar("_S", bound="Sampler")


class Sampler:
    """A `with` block during which `sample()` runs at once and then every POLL_SECONDS."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self: _S) -> _S:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(POLL_SECONDS):
                return

    def sample(self) -> None:
        raise NotImplementedError


class TreeMonitor(Sampler):
    """Polls a process tree and the sandboxes every POLL_SECONDS: peak RSS per role and the last
    CPU seen per process (a process's last < POLL_SECONDS of CPU can be missed)."""

    def __init__(self, root_pid: int, sandboxes: list[Sandbox]) -> None:
        super().__init__()
        self.root_pid = root_pid
        self.sandboxes = sandboxes
        self.peak_rss: dict[str, int] = {}
        self._cpu: dict[int, tuple[str, float]] = {}

    def sample(self) -> None:
        for box in self.sandboxes:
            box.sample()
        try:
            root = psutil.Process(self.root_pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for process in processes:
            try:
                with process.oneshot():
                    role = role_of(process.cmdline())
                    rss = process.memory_info().rss
                    known = self._cpu.get(process.pid)
                    if known and role == "other":  # a zombie's cmdline is empty: keep its role
                        role = known[0]
                    self._cpu[process.pid] = (role, cpu_seconds(process))
            except psutil.Error:
                continue
            if not rss:  # a zombie: exited, not yet reaped
                continue
            self.peak_rss[role] = max(self.peak_rss.get(role, 0), rss)

    def cpu_by_role(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for role, seconds in self._cpu.values():
            totals[role] = totals.get(role, 0.0) + seconds
        return totals


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class TreeRun:
    """A command's process tree, measured: wall, CPU of the whole tree (getrusage of the
    waited-for children), per-role peak RSS and CPU, the sandboxes' CPU meanwhile."""

    returncode: int | None
    wall: float
    cpu: float
    sandbox_cpu: dict[str, float]
    peak_rss: dict[str, int]
    cpu_by_role: dict[str, float]
    finished: bool = True


def run_tree(command: list[str], env: dict[str, str], log: Path, sandboxes: list[Sandbox],
             timeout: float) -> TreeRun:
    sandbox_before = {box.name: box.cpu() for box in sandboxes}
    cpu_before = children_cpu()
    started = time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        popen = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        with TreeMonitor(popen.pid, sandboxes) as monitor:
            finished = True
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                finished = False
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
    return TreeRun(
        returncode=popen.returncode if finished else None,
        wall=time.monotonic() - started, cpu=children_cpu() - cpu_before,
        sandbox_cpu={box.name: box.cpu() - sandbox_before[box.name] for box in sandboxes},
        peak_rss=dict(monitor.peak_rss), cpu_by_role=monitor.cpu_by_role(), finished=finished,
    )


@dataclass
class Timed:
    """One process under `/usr/bin/time -v`: its own CPU and peak RSS."""

    returncode: int
    wall: float
    cpu: float
    peak_rss: int


def run_timed(command: list[str], stdin: Path | None, stdout: Path | None, stderr: Path,
              env: dict[str, str], timeout: float) -> Timed:
    report = stderr.with_suffix(".time")
    started = time.monotonic()
    with (open(stdin, "rb") if stdin else open(os.devnull, "rb")) as given, \
            (open(stdout, "wb") if stdout else open(os.devnull, "wb")) as out, \
            stderr.open("ab") as err:
        done = subprocess.run(["/usr/bin/time", "-v", "-o", str(report), *command], cwd=ROOT,
                              env=env, stdin=given, stdout=out, stderr=err, timeout=timeout,
                              check=False)
    wall = time.monotonic() - started
    text = report.read_text()

    def number(label: str) -> float:
        found = re.search(rf"{re.escape(label)}: ([\d.]+)", text)
        return float(found.group(1)) if found else 0.0

    return Timed(done.returncode, wall,
                 number("User time (seconds)") + number("System time (seconds)"),
                 int(number("Maximum resident set size (kbytes)")) * 1024)


def least(runs: list[Timed]) -> Timed:
    """Repeated runs of one command on the same input: the least CPU and wall (a busy shared
    host only ever adds to them), the highest peak RSS and the first failure's exit code."""
    return Timed(next((run.returncode for run in runs if run.returncode), 0),
                 min(run.wall for run in runs), min(run.cpu for run in runs),
                 max(run.peak_rss for run in runs))
