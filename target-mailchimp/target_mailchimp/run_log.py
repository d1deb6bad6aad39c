"""One row per target run in the audit database: when, and whether it succeeded.

The audit trail holds every write with its run id; this table adds the runs themselves (a run
that wrote nothing, or failed before writing, leaves no audit row), so `status` can name the
last successful run and the failed ones since. A table of its own: no migration of older
audit databases.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from target_mailchimp.audit_db import audit_url, open_tables

if TYPE_CHECKING:
    from target_mailchimp.run_context import RunContext

LOGGER = logging.getLogger("target_mailchimp.run_log")
OK, FAILED, RUNNING = "ok", "failed", "running"

metadata = sa.MetaData()
runs = sa.Table(
    "target_runs",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    # ok | failed (the run stopped) | running (or killed: it never ended)
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text),
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def engine_for(config: Mapping[str, Any]) -> sa.Engine:
    """The audit database of `config` with the runs table (its folder made if a file)."""
    return open_tables(audit_url(config.get("audit_store_url")), metadata)


class RunLog:
    """Notes this run's start and end; never lets its own trouble fail the run."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.run_id = str(uuid.uuid4())  # until the run context (audit rows' run id) exists
        try:
            self.engine: sa.Engine | None = engine_for(config)
            with self.engine.begin() as conn:
                conn.execute(runs.insert(), [{"run_id": self.run_id, "started_at": _now(),
                                              "outcome": RUNNING}])
        except Exception as exc:  # the run matters more than its log row
            LOGGER.warning("Could not note the run in the audit database (%s).", exc)
            self.engine = None

    def failed(self, exc: BaseException, context: RunContext | None) -> None:
        self._finish(FAILED, f"{type(exc).__name__}: {exc}", context)

    def ended(self, completed: bool, context: RunContext | None) -> None:
        """In the run's `finally`: a completed run is ok (writes it left failed are in the
        audit trail); an incomplete one was already noted by `failed`."""
        if completed:
            self._finish(OK, "", context)

    def _finish(self, outcome: str, detail: str, context: RunContext | None) -> None:
        if self.engine is None:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.run_id == self.run_id).values(
                    run_id=context.run_id if context is not None else self.run_id,
                    ended_at=_now(), outcome=outcome, detail=detail[:1000] or None))
        except Exception as exc:  # likewise
            LOGGER.warning("Could not note the run's end in the audit database (%s).", exc)
        finally:
            self.engine.dispose()
            self.engine = None  # noted once
