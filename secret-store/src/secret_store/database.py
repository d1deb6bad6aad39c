"""One database URL for every durable store, with a namespace per tenant and per component.

Every store of the connector (the mapper's lookup store and ledger, the targets' audit trails,
rejections, webhook inboxes, the encrypted secrets) opens its database here:

- `store_url(setting, default_path)` picks the URL: the store's own setting when given, else the
  project-wide `EXACTMC_DATABASE_URL`, else the store's SQLite file (what a single company uses).
- `engine_for(url, component)` opens it. On PostgreSQL each (tenant, component) gets its own
  schema, `<tenant>__<component>` (`exactmc__<component>` without a tenant), made on first use and
  put first on the connection's `search_path`: the stores keep plain, unqualified table names,
  two tenants never see each other's rows, and removing a tenant is dropping its schemas. On
  SQLite a shared `EXACTMC_DATABASE_URL` file becomes one file per (tenant, component) beside
  it (SQLite has no schemas); a store's own file is used as given, because the fleet runner
  already puts each tenant's files in its own directory (`MELTANO_SYS_DIR_ROOT`).

The tenant is `EXACTMC_TENANT` (set by `exactmc-tenants`' runner and Dagster per run).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

DATABASE_URL_ENV = "EXACTMC_DATABASE_URL"
TENANT_ENV = "EXACTMC_TENANT"
_TENANT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # fits in a PostgreSQL identifier with a suffix
_COMPONENT = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


class DatabaseError(Exception):
    """The database URL or tenant name cannot be used."""


def is_tenant_name(name: str) -> bool:
    """Whether `name` is a usable tenant name (lower-case letters, digits, `_`)."""
    return _TENANT.match(name or "") is not None


def valid_tenant(name: str) -> str:
    """`name` if it is a usable tenant name (see `is_tenant_name`), else an error."""
    if not is_tenant_name(name):
        raise DatabaseError(
            f"Invalid tenant name {name!r}: use 1-40 lower-case letters, digits and '_', "
            "starting with a letter.")
    return name


def current_tenant() -> str | None:
    """The tenant this process works for (`EXACTMC_TENANT`), or None for a single company."""
    name = os.environ.get(TENANT_ENV, "").strip()
    return valid_tenant(name) if name else None


SYS_DIR_ENV = "MELTANO_SYS_DIR_ROOT"


def default_sqlite_path(plugin: str, file: str) -> Path:
    """Where `plugin` keeps `file` by default: under Meltano's system directory.

    Meltano gives every plugin `MELTANO_SYS_DIR_ROOT`; the fleet runner points it at the
    tenant's own directory, so each tenant's default files are its own. Outside Meltano:
    `.meltano/` of the working directory, as before.
    """
    return Path(os.environ.get(SYS_DIR_ENV) or ".meltano") / plugin / file


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(path)}"


def store_url(setting: str | None, default_path: str | os.PathLike[str] | None = None) -> str:
    """The URL a store opens: its own setting, else `EXACTMC_DATABASE_URL`, else its file.

    `setting` may be a URL or a plain file path (the older `*_path` settings).
    """
    if setting:
        return setting if "://" in setting else sqlite_url(setting)
    shared = os.environ.get(DATABASE_URL_ENV, "").strip()
    if shared:
        return shared
    if default_path is None:
        raise DatabaseError(f"No database: set {DATABASE_URL_ENV} or the store's own setting.")
    return sqlite_url(default_path)


def is_shared(url: str) -> bool:
    """Whether `url` is the project-wide database (so it is split per tenant and component)."""
    return url == os.environ.get(DATABASE_URL_ENV, "").strip()


def schema_name(component: str, tenant: str | None) -> str:
    return f"{tenant or 'exactmc'}__{component}"


def _split_sqlite(url: URL, component: str, tenant: str | None) -> URL:
    """`fleet.sqlite` -> `fleet.<tenant>.<component>.sqlite` beside it."""
    path = Path(url.database or "")
    if not url.database or url.database == ":memory:":
        return url
    stem = ".".join(part for part in (path.stem, tenant, component) if part)
    return url.set(database=str(path.with_name(stem + (path.suffix or ".sqlite"))))


def engine_for(url: str, component: str, tenant: str | None = None,
               *, use_current_tenant: bool = True) -> sa.Engine:
    """The engine of `component`'s store at `url`, in `tenant`'s namespace.

    `tenant` defaults to the process's tenant (`EXACTMC_TENANT`) unless `use_current_tenant`
    is False (the stores that are shared by name, like the secret store).
    """
    tenant = _tenant_of(component, tenant, use_current_tenant)
    return _engine(url, component, tenant, is_shared(url))


def store_place(url: str, component: str, tenant: str | None = None,
                *, use_current_tenant: bool = True) -> str:
    """Where `component`'s store at `url` lives, for messages: its SQLite file or its
    PostgreSQL schema (never the URL, which may hold a password)."""
    tenant = _tenant_of(component, tenant, use_current_tenant)
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return f"schema {schema_name(component, tenant)}"
    return str(_sqlite_file(parsed, component, tenant, is_shared(url)))


def store_exists(url: str, component: str, tenant: str | None = None,
                 *, use_current_tenant: bool = True) -> bool:
    """Whether `component`'s store at `url` was ever made (its SQLite file, its PostgreSQL
    schema), found without making it: `engine_for` makes both, and the commands that only
    read (`status`) must not leave an empty store behind for a tenant that never ran."""
    tenant = _tenant_of(component, tenant, use_current_tenant)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        file = _sqlite_file(parsed, component, tenant, is_shared(url))
        return file is None or file.exists()
    if backend != "postgresql":
        return True  # no namespaces made there: what is in it is found by opening it
    engine = sa.create_engine(_psycopg(parsed))
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                {"s": schema_name(component, tenant)}).first() is not None
    finally:
        engine.dispose()


def _tenant_of(component: str, tenant: str | None, use_current_tenant: bool) -> str | None:
    if not _COMPONENT.match(component):
        raise DatabaseError(f"Invalid component name {component!r}.")
    if tenant is None and use_current_tenant:
        return current_tenant()
    return valid_tenant(tenant) if tenant is not None else None


def _sqlite_file(parsed: URL, component: str, tenant: str | None, shared: bool) -> Path | None:
    """The file a SQLite store's engine opens (None: in memory). As the driver takes it: no
    `~` expansion, so `store_exists` looks at the very file `engine_for` makes."""
    if shared:
        parsed = _split_sqlite(parsed, component, tenant)
    database = parsed.database
    return None if database in (None, "", ":memory:") else Path(database)


def _psycopg(parsed: URL) -> URL:
    """psycopg 3, what we install, for a plain `postgresql://` URL."""
    return parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" \
        else parsed


@functools.lru_cache(maxsize=64)
def _engine(url: str, component: str, tenant: str | None, shared: bool) -> sa.Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        file = _sqlite_file(parsed, component, tenant, shared)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(file))
        # Several processes of one tenant (tap, mapper, target, service) share some files:
        # wait for a lock instead of failing at once.
        return sa.create_engine(parsed, connect_args={"timeout": 60})
    if backend != "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True)
    parsed = _psycopg(parsed)
    schema = schema_name(component, tenant)
    engine = sa.create_engine(parsed, pool_pre_ping=True)
    with engine.begin() as connection:
        # Two processes may create the schema at once: the advisory lock serialises them.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

    @sa.event.listens_for(engine, "connect")
    def _search_path(dbapi_connection, _record) -> None:
        # Autocommit-free drivers open a transaction for SET; commit it so it sticks.
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()

    engine.dispose()  # the connection used above predates the listener
    return engine


def drop_tenant(url: str, tenant: str) -> list[str]:
    """Drop every schema (PostgreSQL) or file (shared SQLite) of `tenant`; the names dropped."""
    valid_tenant(tenant)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        dropped = []
        for file in sorted(path.parent.glob(f"{path.stem}.{tenant}.*")):
            file.unlink()
            dropped.append(file.name)
        return dropped
    engine = sa.create_engine(parsed.set(drivername="postgresql+psycopg")
                              if parsed.drivername == "postgresql" else parsed)
    try:
        with engine.begin() as connection:
            schemas = [row[0] for row in connection.execute(sa.text(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE :prefix"),
                {"prefix": f"{tenant}\\_\\_%"})]
            for schema in schemas:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        return schemas
    finally:
        engine.dispose()
