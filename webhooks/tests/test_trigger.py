"""The debouncer alone, with an in-process run function (no subprocess, no server)."""

from __future__ import annotations

import threading
import time

from exactmc_webhooks.trigger import Debouncer


class Recorder:
    def __init__(self, seconds: float = 0.0, results: list[bool] | None = None) -> None:
        self.starts: list[float] = []
        self.active = 0
        self.most_active = 0
        self.seconds = seconds
        self.results = list(results or [])
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            self.starts.append(time.monotonic())
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        time.sleep(self.seconds)
        with self._lock:
            self.active -= 1
        return self.results.pop(0) if self.results else True


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_burst_from_many_threads_is_one_run():
    run = Recorder()
    trigger = Debouncer("t", run, debounce=0.3)
    threads = [threading.Thread(target=lambda: [trigger.notify() for _ in range(50)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1.0)
    trigger.stop()
    assert len(run.starts) == 1


def test_a_steady_stream_still_runs_within_max_delay_and_never_two_at_once():
    run = Recorder(seconds=0.2)
    trigger = Debouncer("t", run, debounce=0.3, max_delay=0.6)
    started = time.monotonic()
    while time.monotonic() - started < 2.0:  # a delivery every 0.1 s: never a 0.3 s pause
        trigger.notify()
        time.sleep(0.1)
    trigger.stop()
    assert len(run.starts) >= 2
    assert run.starts[0] - started < 0.6 + 0.2
    assert run.most_active == 1


def test_min_interval_spaces_the_starts_of_runs():
    run = Recorder()
    trigger = Debouncer("t", run, debounce=0.05, min_interval=1.0)
    trigger.notify()
    wait_until(lambda: len(run.starts) == 1)
    trigger.notify()
    wait_until(lambda: len(run.starts) == 2)
    trigger.stop()
    assert run.starts[1] - run.starts[0] >= 1.0


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
