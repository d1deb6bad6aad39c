"""The debouncer alone, with an in-process run function (no subprocess, no server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from exactmc_webhooks.trigger import Debouncer


class Clock:
    """The debouncer's clock, moved by the test: a busy machine cannot open a pause in a
    burst or delay a due run (real sleeps and thread wake-ups did, on a busy CI machine)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self, seconds: float = 0.0, results: list[bool] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 hold_first: threading.Event | None = None) -> None:
        self.starts: list[float] = []
        self.active = 0
        self.most_active = 0
        self.seconds = seconds
        self.results = list(results or [])
        self.clock = clock
        self.hold_first = hold_first  # the first run lasts until the test sets it
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            self.starts.append(self.clock())
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            first = len(self.starts) == 1
        if first and self.hold_first is not None:
            self.hold_first.wait(30)
        time.sleep(self.seconds)
        with self._lock:
            self.active -= 1
        return self.results.pop(0) if self.results else True


def wait_until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_burst_from_many_threads_is_one_run():
    clock = Clock()
    run = Recorder(clock=clock)
    trigger = Debouncer("t", run, debounce=0.3, clock=clock)
    threads = [threading.Thread(target=lambda: [trigger.notify() for _ in range(50)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert run.starts == []  # the burst never paused: nothing is due yet
    clock.now = 1.0  # the pause after it; the loop sees it within its 0.3 s wait
    wait_until(lambda: len(run.starts) == 1)
    time.sleep(0.5)  # a second run would start now (nothing is left to cover)
    trigger.stop()
    assert run.starts == [1.0]


def test_a_steady_stream_still_runs_within_max_delay_and_never_two_at_once():
    clock, release = Clock(), threading.Event()
    run = Recorder(clock=clock, hold_first=release)
    trigger = Debouncer("t", run, debounce=0.3, max_delay=0.6, clock=clock)
    for tenth in range(6):  # a delivery every 0.1 s: never the 0.3 s pause
        clock.now = tenth / 10
        trigger.notify()
    assert run.starts == []  # not due before max_delay (the clock stands still)
    clock.now = 0.6
    trigger.notify()
    wait_until(lambda: len(run.starts) == 1)
    assert run.starts == [0.6]  # max_delay after the first delivery, despite no pause
    # Deliveries during the run, long past debounce and max_delay: no second run at once.
    clock.now = 0.7
    trigger.notify()
    clock.now = 5.0
    trigger.notify()
    time.sleep(0.5)  # an overlapping run would have started by now
    assert len(run.starts) == 1
    release.set()
    wait_until(lambda: len(run.starts) == 2)  # the follow-up covers them
    trigger.stop()
    assert run.starts == [0.6, 5.0]
    assert run.most_active == 1


def test_min_interval_spaces_the_starts_of_runs():
    clock = Clock()
    run = Recorder(clock=clock)
    trigger = Debouncer("t", run, debounce=0.05, min_interval=1.0, clock=clock)
    trigger.notify()
    clock.now = 0.1
    wait_until(lambda: len(run.starts) == 1)
    clock.now = 0.2
    trigger.notify()
    clock.now = 1.05  # past the debounce, not past min_interval after the first start
    time.sleep(0.3)  # the loop rechecks within its wait (<= 0.9 s), finds it not due
    assert len(run.starts) == 1
    clock.now = 1.1
    wait_until(lambda: len(run.starts) == 2)
    trigger.stop()
    assert run.starts == [0.1, 1.1]


def test_a_failure_is_retried_at_the_next_delivery_before_the_backoff():
    run = Recorder(results=[False, True])
    trigger = Debouncer("t", run, debounce=0.05, backoff=60)
    trigger.notify()
    wait_until(lambda: len(run.starts) == 1)
    time.sleep(0.2)
    trigger.notify()  # a new delivery: no need to wait the 60 s backoff
    wait_until(lambda: len(run.starts) == 2)
    time.sleep(0.3)
    trigger.stop()
    assert len(run.starts) == 2
