"""Debounced, serialised runs of one command (e.g. `meltano run exactonline-to-mailchimp`).

One thread per command, so two runs of it never overlap here (and the plugins' run locks refuse
a second run started elsewhere, e.g. by the 15-minute schedule: that run fails and is retried).
A delivery marks a run as wanted; the run starts once deliveries pause for `debounce` seconds
(at most `max_delay` after the first), so a burst is one run. Deliveries during a run mark one
follow-up run, which covers everything that arrived meanwhile. A failed run is retried at the
next delivery or after a backoff (doubling, capped): the schedule stays the safety net anyway.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
import time
from collections.abc import Callable

LOGGER = logging.getLogger("exactmc_webhooks")
MAX_BACKOFF = 900.0  # the schedule's 15 minutes: waiting longer gains nothing


def command_runner(command: str, timeout: float | None = None) -> Callable[[], bool]:
    """A run of `command` (no shell): True when it exits 0."""
    args = shlex.split(command)

    def run() -> bool:
        try:
            # The command is the operator's own setting, never from a delivery.
            done = subprocess.run(  # noqa: S603
                args, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            LOGGER.error("Triggered run %r could not finish: %s", command, exc)
            return False
        if done.returncode != 0:
            LOGGER.error("Triggered run %r exited %s", command, done.returncode)
        return done.returncode == 0

    return run


class Debouncer:
    def __init__(self, name: str, run: Callable[[], bool], debounce: float = 2.0,
                 max_delay: float = 30.0, backoff: float = 60.0, min_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._run = run
        self.debounce = debounce
        self.max_delay = max(max_delay, debounce)
        self.backoff = backoff
        self.min_interval = min_interval  # between run starts: caps Exact calls per hour
        self._last_start: float | None = None
        self._clock = clock
        self._cond = threading.Condition()
        self._first: float | None = None  # first delivery not yet covered by a run
        self._last = 0.0
        self._retry_at: float | None = None
        self._failures = 0
        self._stopped = False
        self.runs = 0  # started, for logs and tests
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"trigger-{name}")
        self._thread.start()

    def notify(self) -> None:
        """A delivery was stored: a run is wanted (soon, once deliveries pause)."""
        with self._cond:
            now = self._clock()
            if self._first is None:
                self._first = now
            self._last = now
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """No new run starts; a run under way is left to finish on its own."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)

    def _due(self) -> float | None:
        due = None
        if self._first is not None:
            due = min(self._last + self.debounce, self._first + self.max_delay)
        if self._retry_at is not None:
            due = self._retry_at if due is None else min(due, self._retry_at)
        if due is not None and self._last_start is not None:
            due = max(due, self._last_start + self.min_interval)
        return due

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    due, now = self._due(), self._clock()
                    if due is not None and now >= due:
                        break
                    self._cond.wait(None if due is None else due - now)
                # Everything up to now is covered by this run; later deliveries want another.
                self._first = None
                self._retry_at = None
                self._last_start = self._clock()
                self.runs += 1
            LOGGER.info("Trigger %s: run %d starts", self.name, self.runs)
            try:
                ok = self._run()
            except Exception:  # a bug in a runner must not end the trigger thread
                LOGGER.exception("Trigger %s: run failed", self.name)
                ok = False
            LOGGER.info("Trigger %s: run %d ended %s", self.name, self.runs,
                        "ok" if ok else "failed")
            with self._cond:
                if ok:
                    self._failures = 0
                else:
                    self._failures += 1
                    wait = min(self.backoff * 2 ** (self._failures - 1), MAX_BACKOFF)
                    self._retry_at = self._clock() + wait
                    LOGGER.warning("Trigger %s: retry in %.0f s or at the next delivery",
                                   self.name, wait)
