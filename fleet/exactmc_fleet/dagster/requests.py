"""Run requests: the hook through which webhooks (or a person) ask Dagster for a tenant's run.

A row `(tenant, job)` in the fleet database's `run_requests` table (component `fleet`, shared
by every tenant) means "run this tenant's job soon". Asking again before the sensor has seen it
only moves `requested_at` (one row per tenant and job: a burst of webhooks is one run). The
sensor (`sensors.py`) turns each row into one Dagster run, keyed by the row's time, and deletes
exactly the rows it read, so a request made meanwhile is kept for the next tick.

Why a table and not the webhook inboxes themselves: the inboxes' format belongs to the webhook
service and the taps, and the service already decides when a delivery warrants a run (its
debounced `trigger_command`). In a fleet that command becomes
`python -m exactmc_fleet.dagster.requests TENANT JOB`, so Dagster, not the service, starts runs
(with its queue, per-tenant limit and retries), on whichever machine its daemon runs.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from secret_store.database import DATABASE_URL_ENV, engine_for, store_url, valid_tenant

from exactmc_fleet.registry import default_registry_url

COMPONENT = "fleet"
JOBS = ("exactonline-to-mailchimp", "mailchimp-to-exactonline", "reconcile")

_metadata = sa.MetaData()
run_requests = sa.Table(
    "run_requests", _metadata,
    sa.Column("tenant", sa.String(40), primary_key=True),
    sa.Column("job", sa.String(60), primary_key=True),
    # Microseconds since the epoch: an integer compares the same on SQLite and PostgreSQL.
    sa.Column("requested_at", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class RunRequestRow:
    tenant: str
    job: str
    requested_at: int

    @property
    def run_key(self) -> str:
        return f"{self.tenant}:{self.job}:{self.requested_at}"


class RunRequests:
    """The `run_requests` table of one fleet database."""

    def __init__(self, url: str | None = None) -> None:
        # The tenant registry's database: whoever can see the tenants can ask for their runs.
        self.engine = engine_for(url or default_registry_url(), COMPONENT,
                                 use_current_tenant=False)
        _metadata.create_all(self.engine, checkfirst=True)

    def request(self, tenant: str, job: str) -> None:
        valid_tenant(tenant)
        if job not in JOBS:
            raise ValueError(f"Unknown job {job!r}: one of {', '.join(JOBS)}.")
        now = time.time_ns() // 1000
        with self.engine.begin() as connection:
            # Portable upsert (SQLite >= 3.24 and PostgreSQL read the same text).
            connection.execute(sa.text(
                "INSERT INTO run_requests (tenant, job, requested_at) "
                "VALUES (:tenant, :job, :now) ON CONFLICT (tenant, job) "
                "DO UPDATE SET requested_at = excluded.requested_at"),
                {"tenant": tenant, "job": job, "now": now})

    def pending(self) -> list[RunRequestRow]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(run_requests).order_by(
                run_requests.c.requested_at))
            return [RunRequestRow(r.tenant, r.job, int(r.requested_at)) for r in rows]

    def done(self, rows: Iterable[RunRequestRow]) -> int:
        """Delete the rows as read: a request renewed since (a later time) stays."""
        params = [{"tenant": r.tenant, "job": r.job, "at": r.requested_at} for r in rows]
        if not params:
            return 0
        table = run_requests.c
        with self.engine.begin() as connection:
            result = connection.execute(
                run_requests.delete().where(
                    table.tenant == sa.bindparam("tenant"), table.job == sa.bindparam("job"),
                    table.requested_at == sa.bindparam("at")), params)
        return result.rowcount


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exactmc_fleet.dagster.requests",
        description="Ask the fleet's Dagster to run TENANT's JOB soon (the webhook service's "
                    f"trigger command in a fleet). Database: {DATABASE_URL_ENV}.")
    parser.add_argument("tenant")
    parser.add_argument("job", nargs="?", default=JOBS[0], choices=JOBS)
    parser.add_argument("--registry-url", help="the tenant registry's database (default: "
                        f"{DATABASE_URL_ENV}, else the project's .meltano/fleet/tenants.sqlite)")
    args = parser.parse_args(argv)
    RunRequests(args.registry_url or project_registry_url()).request(args.tenant, args.job)
    return 0


def project_registry_url() -> str:
    """The registry Dagster reads: EXACTMC_DATABASE_URL, else the project's own file (also
    when a tenant's service runs with the tenant's MELTANO_SYS_DIR_ROOT)."""
    project = Path(os.environ.get("MELTANO_PROJECT_ROOT") or os.environ.get(
        "EXACTMC_PROJECT_ROOT") or ".")
    return store_url(None, project / ".meltano" / "fleet" / "tenants.sqlite")


if __name__ == "__main__":
    raise SystemExit(main())
