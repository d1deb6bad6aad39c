"""The tap's run summary (`run_summary_path`): what the last run read, and Exact's budget left.

Why a file: the call budget Exact reports (X-RateLimit-* headers) and the records read exist
only in the running process; `target-mailchimp:status` shows them, so each run leaves them
behind in a small JSON file (no customer data, no secret: counts, divisions, times). It keeps
the newest run (`last`) and the newest successful one (`last_ok`).

Records are counted from the SDK's own `record_count` metrics (logger `singer_sdk.metrics`),
so nothing in the streams changes; with metrics logging turned off the counts stay empty.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from singer_sdk.metrics import METRICS_LOGGER_NAME, Metric, Point

if TYPE_CHECKING:
    from tap_exactonline.tap import TapExactOnline

LOGGER = logging.getLogger("tap_exactonline.run_summary")


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(
        timespec="seconds")


class RecordCounter(logging.Handler):
    """Sums the SDK's record_count points per stream while attached."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        point = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if isinstance(point, Point) and point.metric == Metric.RECORD_COUNT:
            self.counts[str(point.tags.get("stream"))] += int(point.value or 0)

    def __enter__(self) -> RecordCounter:
        logging.getLogger(METRICS_LOGGER_NAME).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(METRICS_LOGGER_NAME).removeHandler(self)


def write_summary(path: str, run: dict[str, Any]) -> None:
    """Replace the file atomically; `last_ok` moves only with a successful run."""
    target = Path(path)
    try:
        previous = json.loads(target.read_text())
    except (OSError, ValueError):
        previous = {}
    succeeded = run.get("outcome") in ("ok", "stopped_early")  # a spent budget is no failure
    document = {"last": run, "last_ok": run if succeeded else previous.get("last_ok")}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".run-summary-")
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=1)
    os.replace(tmp, target)


def read_summary(path: str) -> dict[str, Any] | None:
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def describe_run(*, started: float, finished: float, outcome: str, error: str | None,
                 records: Counter[str], budgets: dict[int | None, Any],
                 divisions: list[int], token_issued_at: float | None) -> dict[str, Any]:
    return {
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "outcome": outcome,  # ok | stopped_early (budget) | failed
        "error": error,
        "records": dict(sorted(records.items())),
        "divisions": divisions,
        "budget": {
            str(division): {"daily_limit": budget.daily_limit,
                            "daily_remaining": budget.daily_remaining,
                            "daily_reset": _iso(budget.daily_reset)}
            for division, budget in sorted(budgets.items(), key=lambda kv: str(kv[0]))
            if division is not None and budget.daily_remaining is not None
        },
        "refresh_token_issued_at": _iso(token_issued_at),
    }


@contextmanager
def recorded_run(tap: TapExactOnline) -> Iterator[None]:
    """Around a sync: write the summary at its end, whatever the outcome."""
    path = tap.config.get("run_summary_path")
    if not path:
        yield
        return
    started = time.time()
    outcome, error = "failed", None
    with RecordCounter() as counter:
        try:
            yield
            outcome = "stopped_early" if tap.rate_limiter.stopped_early else "ok"
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            raise
        finally:
            try:
                issued_at = tap.token_store.read().issued_at
            except Exception:  # the summary must never hide the run's own error
                issued_at = None
            try:
                divisions = list(tap.division_plan.divisions) if (
                    "division_plan" in tap.__dict__) else []
                write_summary(str(path), describe_run(
                    started=started, finished=time.time(), outcome=outcome, error=error,
                    records=counter.counts, budgets=tap.rate_limiter.budgets,
                    divisions=divisions, token_issued_at=issued_at))
            except OSError as exc:
                LOGGER.warning("Could not write the run summary %s (%s).", path, exc)
