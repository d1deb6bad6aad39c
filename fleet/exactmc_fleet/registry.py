"""The tenant registry: which companies the fleet runs, with what settings and schedule.

One table (`tenants`) in the `fleet` component of the fleet's database (`EXACTMC_DATABASE_URL`,
schema `exactmc__fleet` on PostgreSQL), else a SQLite file under Meltano's system directory.
It holds no secret: a tenant's Exact client secret, tokens and Mailchimp key live in the
encrypted store under the tenant's names; `settings` refuses names that look like secrets.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from secret_store.database import (
    DatabaseError,
    default_sqlite_path,
    engine_for,
    store_url,
    valid_tenant,
)

REGIONS = ("nl", "be", "de", "fr", "es", "uk", "us")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# A tenant's `settings` are kept in plain text: names that carry secrets are refused.
_SECRET_NAME = re.compile(
    r"PASSWORD|API_KEY|CLIENT_SECRET|REFRESH_TOKEN|ACCESS_TOKEN|OAUTH_TOKEN|(^|_)KEY$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?#]+$")


class TenantError(Exception):
    """A tenant is unknown, already exists, or its settings cannot be used."""


@dataclass(frozen=True)
class Tenant:
    """One Exact company (region, divisions) paired with one Mailchimp audience and store."""

    name: str
    exact_client_id: str
    region: str = "nl"
    divisions: tuple[int, ...] = ()  # empty: all divisions of the company
    list_id: str | None = None  # Mailchimp audience
    store_id: str | None = None  # Mailchimp e-commerce store
    schedule: str = "0 * * * *"  # cron of the tenant's main job
    paused: bool = False
    settings: Mapping[str, str] = field(default_factory=dict)  # extra plugin env vars

    def __post_init__(self) -> None:
        try:
            valid_tenant(self.name)
        except DatabaseError as exc:
            raise TenantError(str(exc)) from None
        if not self.exact_client_id:
            raise TenantError(f"Tenant {self.name}: an Exact client id is required.")
        if self.region not in REGIONS:
            raise TenantError(f"Tenant {self.name}: unknown region {self.region!r} "
                              f"(one of {', '.join(REGIONS)}).")
        object.__setattr__(self, "divisions", tuple(int(d) for d in self.divisions))
        fields = self.schedule.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise TenantError(
                f"Tenant {self.name}: schedule {self.schedule!r} is not a 5-field cron expression.")
        for key, value in self.settings.items():
            if not _ENV_NAME.match(key):
                raise TenantError(
                    f"Tenant {self.name}: setting {key!r} is not an environment variable name "
                    "(e.g. TAP_EXACTONLINE_BASE_URL).")
            if _SECRET_NAME.search(key):
                raise TenantError(
                    f"Tenant {self.name}: {key} looks like a secret; secrets go to the encrypted "
                    "store (`exactmc-tenants add` reads them from stdin), never to settings.")
            if not isinstance(value, str):
                raise TenantError(f"Tenant {self.name}: setting {key} must be text.")
        object.__setattr__(self, "settings", dict(self.settings))


@dataclass(frozen=True)
class LastRun:
    job: str
    started_at: str  # ISO 8601, UTC
    exit_code: int


def default_registry_url(project_root: Path | None = None) -> str:
    """`EXACTMC_DATABASE_URL`, else `$MELTANO_SYS_DIR_ROOT/fleet/tenants.sqlite` (Meltano sets
    it), else `<project_root>/.meltano/fleet/tenants.sqlite` (a command run by hand)."""
    if project_root is not None and not os.environ.get("MELTANO_SYS_DIR_ROOT"):
        return store_url(None, Path(project_root) / ".meltano" / "fleet" / "tenants.sqlite")
    return store_url(None, default_sqlite_path("fleet", "tenants.sqlite"))


_metadata = sa.MetaData()
_tenants = sa.Table(
    "tenants", _metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("exact_client_id", sa.Text, nullable=False),
    sa.Column("region", sa.String(8), nullable=False),
    sa.Column("divisions", sa.Text, nullable=False),  # JSON list of ints
    sa.Column("list_id", sa.Text),
    sa.Column("store_id", sa.Text),
    sa.Column("schedule", sa.Text, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),  # JSON object
    sa.Column("created_at", sa.Text, nullable=False),
    # The last run started through this registry (`run`, Dagster): cheap for `list`.
    sa.Column("last_run_job", sa.Text),
    sa.Column("last_run_started_at", sa.Text),
    sa.Column("last_run_exit_code", sa.Integer),
)


def _private_sqlite_file(engine: sa.Engine) -> None:
    """Create the registry's SQLite file 0600 before SQLite creates it world-readable."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return
    if engine.url.database == ":memory:":
        return
    path = Path(engine.url.database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


class TenantRegistry:
    """The fleet's tenants, in the fleet database (shared by every tenant: not per tenant)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_registry_url()
        self.engine = engine_for(self.url, "fleet", use_current_tenant=False)
        _private_sqlite_file(self.engine)
        _metadata.create_all(self.engine)

    def add(self, tenant: Tenant) -> None:
        row = {
            "name": tenant.name, "exact_client_id": tenant.exact_client_id,
            "region": tenant.region, "divisions": json.dumps(list(tenant.divisions)),
            "list_id": tenant.list_id, "store_id": tenant.store_id,
            "schedule": tenant.schedule, "paused": tenant.paused,
            "settings": json.dumps(dict(tenant.settings), sort_keys=True),
            "created_at": _now(),
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(_tenants.insert(), row)
        except sa.exc.IntegrityError:
            raise TenantError(f"Tenant {tenant.name} already exists.") from None

    def get(self, name: str) -> Tenant:
        with self.engine.connect() as connection:
            row = connection.execute(
                _tenants.select().where(_tenants.c.name == name)).mappings().first()
        if row is None:
            raise TenantError(f"No tenant {name!r} (`exactmc-tenants list` shows them).")
        return _tenant(row)

    def all(self) -> list[Tenant]:
        with self.engine.connect() as connection:
            rows = connection.execute(_tenants.select().order_by(_tenants.c.name)).mappings()
            return [_tenant(row) for row in rows]

    def set_paused(self, name: str, paused: bool) -> None:
        self._update(name, paused=paused)

    def update(self, tenant: Tenant) -> None:
        """Replace `tenant.name`'s settings (its state, secrets and last run are kept)."""
        self._update(
            tenant.name, exact_client_id=tenant.exact_client_id, region=tenant.region,
            divisions=json.dumps(list(tenant.divisions)), list_id=tenant.list_id,
            store_id=tenant.store_id, schedule=tenant.schedule, paused=tenant.paused,
            settings=json.dumps(dict(tenant.settings), sort_keys=True))

    def remove(self, name: str) -> None:
        with self.engine.begin() as connection:
            deleted = connection.execute(_tenants.delete().where(_tenants.c.name == name))
        if deleted.rowcount == 0:
            raise TenantError(f"No tenant {name!r}.")

    def record_run(self, name: str, job: str, started_at: datetime, exit_code: int) -> None:
        """Remember `name`'s latest run (shown by `list`)."""
        self._update(name, last_run_job=job, last_run_exit_code=exit_code,
                     last_run_started_at=started_at.astimezone(timezone.utc).isoformat(
                         timespec="seconds"))

    def last_run(self, name: str) -> LastRun | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(_tenants.c.last_run_job, _tenants.c.last_run_started_at,
                          _tenants.c.last_run_exit_code).where(_tenants.c.name == name)).first()
        if row is None or row[0] is None:
            return None
        return LastRun(row[0], row[1], row[2])

    def _update(self, name: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            updated = connection.execute(
                _tenants.update().where(_tenants.c.name == name).values(**values))
        if updated.rowcount == 0:
            raise TenantError(f"No tenant {name!r}.")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tenant(row: Mapping[str, Any]) -> Tenant:
    return Tenant(
        name=row["name"], exact_client_id=row["exact_client_id"], region=row["region"],
        divisions=tuple(json.loads(row["divisions"])), list_id=row["list_id"],
        store_id=row["store_id"], schedule=row["schedule"], paused=bool(row["paused"]),
        settings=json.loads(row["settings"]),
    )
