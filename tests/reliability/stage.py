"""Drive one case: fresh sandboxes and pipeline, runs that may be killed at a chosen call.

Kills are triggered by what the sandboxes observe, never by timing: a `slow` fault holds the
chosen call (the N-th one matching a path) inside the sandbox; once the sandbox has taken that
call, the whole `meltano run` process group gets SIGKILL. The held call is then served into the
dead socket, as a request in flight at a crash would be.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_pipeline import PIPELINE, Pipeline, make_pipeline

from reliability.verdict import Outcome, files_with_secrets, judge

RUN_TIMEOUT = 90  # a run that needs longer is stalled (issue 7 item 7)
HOLD_WAIT = 120  # most seconds to wait for a kill point to be reached


def fault_plan(sandbox: Any) -> Any:
    """Both simulators share FaultPlan; adding through it returns the live Fault."""
    return getattr(sandbox, "fault_plan", None) or sandbox.context.faults


@dataclass
class Hold:
    """Hold the `nth` call matching `path` (and `method`) for `delay` seconds in the sandbox."""

    api: str  # "exact" or "mailchimp"
    path: str
    method: str | None = None
    nth: int = 1
    delay: float = 1.5


@dataclass
class Stage:
    """One case's pipeline and its runs; `outcome()` judges what Mailchimp ends up holding."""

    name: str
    pipeline: Pipeline
    overlay: dict[str, str] = field(default_factory=dict)
    last_returncode: int = 0
    unexercised: list[str] = field(default_factory=list)
    runs: int = 0
    divisions: tuple[int, ...] | None = None  # the company's; None: the seed's main company
    left_by_kills: list[str] = field(default_factory=list)  # secrets on disk right after a kill
    judged_run: int | None = None  # the run whose exit status counts (default: the last)

    @property
    def exact(self) -> Any:
        return self.pipeline.exact

    @property
    def mailchimp(self) -> Any:
        return self.pipeline.mailchimp

    def sandbox(self, api: str) -> Any:
        return self.exact if api == "exact" else self.mailchimp

    # -- runs ---------------------------------------------------------------------------------
    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.runs += 1
        log = (self.pipeline.workdir / f"run-{self.runs:02d}.log").open("wb")
        with log:
            return subprocess.Popen(
                [*self.pipeline.command("run", *args), *PIPELINE], cwd=self.pipeline.root,
                env=env or self.pipeline.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill takes all of it
            )

    def finish(self, process: subprocess.Popen[bytes], timeout: float = RUN_TIMEOUT) -> int:
        try:
            self.last_returncode = process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            self.last_returncode = -1
            self.note_log(f"run {self.runs} stalled beyond {timeout:.0f} s")
        return self.last_returncode

    def run(self, *args: str, env: dict[str, str] | None = None) -> int:
        return self.finish(self.start(*args, env=env))

    def rerun_after_kill(self) -> int:
        """Meltano sees the killed run as running for 5 minutes: `--force`, as documented."""
        return self.run("--force")

    def next_scheduled_run(self, *args: str) -> int:
        """A run that stopped cleanly because Exact said "too early" (a token rotation whose
        answer was lost) is followed by the next scheduled run, once Exact allows a refresh
        again: the sandbox's clock moves on instead of the test waiting ~10 minutes. Any other
        failure stands."""
        if self.last_returncode == 0 or "too early" not in self.last_output().lower():
            return self.last_returncode
        self.note_log(f"run {self.runs} stopped on Exact's 'too early': next scheduled run")
        # Exact allows the next refresh this long after the last one (570 s by default); the
        # previous refresh token still lingers then (600 s by default).
        self.exact.advance_clock(self.exact.authority.settings.refresh_too_early_seconds + 5)
        return self.run(*args)

    def run_killed_at(self, hold: Hold, *, before: Sequence[tuple[str, dict[str, Any]]] = ()
                      ) -> bool:
        """Start a run, SIGKILL its process group once the sandbox has taken the held call.

        `before`: (api, fault spec) injected first, e.g. to bring a token refresh about.
        Returns whether the kill point was reached (else the run ended first: unexercised).
        """
        for api, spec in before:
            fault_plan(self.sandbox(api)).add(**spec)
        plan = fault_plan(self.sandbox(hold.api))
        if hold.nth > 1:
            plan.add(path=hold.path, method=hold.method, kind="slow", delay=0.0,
                     count=hold.nth - 1)
        marker = plan.add(path=hold.path, method=hold.method, kind="slow", delay=hold.delay)
        process = self.start()
        deadline = time.monotonic() + HOLD_WAIT
        while marker.count > 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        reached = marker.count == 0
        kill_group(process)
        self.last_returncode = -9
        # What a kill leaves on disk, before the next run could tidy it away (issue 7 item 8).
        self.left_by_kills += [f"after the kill: {f}" for f in files_with_secrets(self.pipeline)]
        time.sleep(hold.delay + 0.3)  # the held call is served (into the dead socket) first
        for api in ("exact", "mailchimp"):
            fault_plan(self.sandbox(api)).clear()
        if not reached:
            self.unexercised.append(f"kill point {hold.api} {hold.method or ''} {hold.path} "
                                    f"#{hold.nth} not reached")
        return reached

    def expect_faults_taken(self) -> None:
        """Injected faults the run never met would make the case prove nothing."""
        for api in ("exact", "mailchimp"):
            plan = fault_plan(self.sandbox(api))
            for left in plan.list():
                self.unexercised.append(f"{api} fault {left['kind']} {left['method'] or ''} "
                                        f"{left['path']} never met ({left['count']} left)")
            plan.clear()

    def note_log(self, message: str) -> None:
        with (self.pipeline.workdir / "harness.log").open("a") as log:
            log.write(message + "\n")

    # -- verdict ------------------------------------------------------------------------------
    def outcome(self) -> Outcome:
        outcome = judge(self.pipeline, self.name, overlay=self.overlay,
                        last_returncode=self.last_returncode, divisions=self.divisions)
        for problem in self.unexercised:
            outcome.add("unexercised", problem)
        for finding in self.left_by_kills:
            outcome.add("secrets_found", finding)
        if outcome.failed_runs:
            outcome.notes[:0] = [f"last run: {line}"
                                 for line in self.last_errors(run=self.judged_run)]
        return outcome

    def last_output(self, run: int | None = None) -> str:
        log = self.pipeline.workdir / f"run-{run or self.runs:02d}.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def last_errors(self, count: int = 4, run: int | None = None) -> list[str]:
        """The last lines of a run's output (the last run's) that name an error."""
        lines = self.last_output(run).splitlines()
        errors = [line.split("] ", 1)[-1][:240] for line in lines
                  if "rror" in line or "failed" in line.lower() or "refus" in line]
        return errors[-count:]


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(30)


Factories = tuple[Callable[..., Any], Callable[..., Any]]


def new_stage(name: str, factories: Factories, workdir: Path, *, accounts: int = 10,
              seed: int = 7, exact_options: dict[str, Any] | None = None,
              mailchimp_options: dict[str, Any] | None = None,
              settings: dict[str, str] | None = None) -> Stage:
    """Fresh sandboxes (small seed: 3 divisions x `accounts`) and an isolated pipeline."""
    exact_factory, mailchimp_factory = factories
    exact = exact_factory(accounts_per_division=accounts, seed=seed, **(exact_options or {}))
    mailchimp = mailchimp_factory(**(mailchimp_options or {}))
    workdir.mkdir(parents=True, exist_ok=True)
    pipeline = make_pipeline(exact, mailchimp, workdir)
    # The cases' faults and kills aim at single writes (PUTs); those of 20 or more a drain
    # would go as a /batches job (the target's default), which VIA_BATCHES cases opt into.
    pipeline.env["TARGET_MAILCHIMP_BATCH_OPERATIONS_THRESHOLD"] = "200"
    pipeline.env.update(settings or {})
    return Stage(name, pipeline)
