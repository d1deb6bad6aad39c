"""The one-URL database layer: per-tenant, per-component namespaces on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from secret_store.database import (
    DATABASE_URL_ENV,
    TENANT_ENV,
    DatabaseError,
    drop_tenant,
    engine_for,
    store_exists,
    store_place,
    store_url,
)


def _table(engine: sa.Engine) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table("rows", metadata, sa.Column("k", sa.String(20), primary_key=True))
    metadata.create_all(engine)
    return table


def test_tenants_and_components_never_share_rows(database_url, monkeypatch):
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    url = store_url(None, "/unused.sqlite")
    assert url == database_url
    engines = {(tenant, component): engine_for(url, component, tenant)
               for tenant in ("acme", "globex") for component in ("audit", "mapper")}
    for (tenant, component), engine in engines.items():
        table = _table(engine)  # same table name everywhere
        with engine.begin() as connection:
            connection.execute(table.insert(), {"k": f"{tenant}-{component}"})
    for (tenant, component), engine in engines.items():
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT k FROM rows")).scalars().all()
        assert rows == [f"{tenant}-{component}"]
    dropped = drop_tenant(database_url, "acme")
    assert len(dropped) == 2
    engine = engine_for(url, "audit", "globex")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT k FROM rows")).scalars().all() == [
            "globex-audit"]


def test_the_process_tenant_comes_from_the_environment(postgres_url, monkeypatch):
    monkeypatch.setenv(TENANT_ENV, "acme")
    engine = engine_for(postgres_url, "audit")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT current_schema()")).scalar() == "acme__audit"


def test_own_setting_wins_and_paths_become_sqlite_urls(monkeypatch, tmp_path):
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://db/fleet")
    assert store_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert store_url(str(tmp_path / "a.sqlite")) == f"sqlite:///{tmp_path / 'a.sqlite'}"
    monkeypatch.delenv(DATABASE_URL_ENV)
    assert store_url(None, tmp_path / "b.sqlite") == f"sqlite:///{tmp_path / 'b.sqlite'}"


@pytest.mark.parametrize("name", ["", "Acme", "a-b", "1x", "x" * 41, "a;drop"])
def test_bad_tenant_names_are_refused(name):
    with pytest.raises(DatabaseError):
        engine_for("sqlite://", "audit", name)


def test_a_store_is_found_without_being_made(database_url, monkeypatch):
    """`store_exists` looks (file or schema) and makes nothing; `engine_for` makes the store."""
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    assert not store_exists(database_url, "audit", "acme")
    assert not store_exists(database_url, "audit", "acme")  # looking made nothing
    _table(engine_for(database_url, "audit", "acme"))
    assert store_exists(database_url, "audit", "acme")
    assert not store_exists(database_url, "audit", "globex")
    assert not store_exists(database_url, "mapper", "acme")
    place = store_place(database_url, "audit", "acme")
    if database_url.startswith("postgresql"):
        assert place == "schema acme__audit"
    else:  # the shared file split per tenant and component
        assert place.endswith("store.acme.audit.sqlite")
    assert "@" not in place  # never the URL with its credentials


def test_a_store_is_looked_for_where_its_engine_opens_it(tmp_path, monkeypatch):
    """`~` is not expanded by SQLite: the check must not look in the home directory when the
    engine made `./~/…` (status would then call a store that exists missing)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///~/audit.sqlite"
    assert not store_exists(url, "audit")
    _table(engine_for(url, "audit"))
    assert store_exists(url, "audit") and (tmp_path / "~" / "audit.sqlite").exists()
