"""The tenant registry on both backends (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from exactmc_fleet.registry import Tenant, TenantError, TenantRegistry, default_registry_url


def test_add_get_list_pause_resume_remove(database_url: str) -> None:
    registry = TenantRegistry(database_url)
    acme = Tenant("acme", "app-1", region="be", divisions=(101, 102), list_id="L1",
                  store_id="S1", schedule="*/15 * * * *",
                  settings={"TAP_EXACTONLINE_BASE_URL": "http://127.0.0.1:1/be"})
    registry.add(acme)
    registry.add(Tenant("globex", "app-1"))
    assert registry.get("acme") == acme
    assert [t.name for t in registry.all()] == ["acme", "globex"]
    assert registry.get("globex").divisions == () and not registry.get("globex").paused

    registry.set_paused("acme", True)
    assert registry.get("acme").paused
    registry.set_paused("acme", False)
    assert not registry.get("acme").paused

    changed = Tenant("acme", "app-2", region="nl", divisions=(), list_id="L2",
                     schedule="0 3 * * *", settings={"TARGET_MAILCHIMP_BATCH_SIZE": "100"})
    registry.update(changed)
    assert registry.get("acme") == changed
    registry.update(acme)
    with pytest.raises(TenantError, match="No tenant"):
        registry.update(Tenant("nobody", "x"))

    assert registry.last_run("acme") is None
    registry.record_run("acme", "exactonline-to-mailchimp", datetime.now(timezone.utc), 2)
    assert registry.last_run("acme").exit_code == 2

    with pytest.raises(TenantError, match="already exists"):
        registry.add(Tenant("acme", "other"))
    registry.remove("acme")
    with pytest.raises(TenantError, match="No tenant 'acme'"):
        registry.get("acme")
    with pytest.raises(TenantError, match="No tenant"):
        registry.set_paused("acme", True)
    with pytest.raises(TenantError, match="No tenant"):
        registry.remove("acme")
    assert [t.name for t in TenantRegistry(database_url).all()] == ["globex"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "Acme"}, "Invalid tenant name"),
    ({"name": "a-b"}, "Invalid tenant name"),
    ({"region": "xx"}, "unknown region"),
    ({"schedule": "hourly"}, "cron"),
    ({"settings": {"TARGET_MAILCHIMP_API_KEY": "k"}}, "looks like a secret"),
    ({"settings": {"SECRET_STORE_KEY": "k"}}, "looks like a secret"),
    ({"settings": {"TAP_EXACTONLINE_CLIENT_SECRET": "s"}}, "looks like a secret"),
    ({"settings": {"lower": "x"}}, "environment variable name"),
    ({"exact_client_id": ""}, "client id"),
])
def test_invalid_tenants_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(TenantError, match=message):
        Tenant(**{"name": "acme", "exact_client_id": "app", **kwargs})


def test_default_registry_file_is_private_under_the_sys_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))
    TenantRegistry().add(Tenant("acme", "app"))
    file = tmp_path / "sys" / "fleet" / "tenants.sqlite"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert TenantRegistry(f"sqlite:///{file}").get("acme").exact_client_id == "app"


def test_by_hand_the_default_registry_is_the_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.delenv("MELTANO_SYS_DIR_ROOT", raising=False)
    TenantRegistry(default_registry_url(tmp_path)).add(Tenant("acme", "app"))
    assert (tmp_path / ".meltano" / "fleet" / "tenants.sqlite").is_file()
    monkeypatch.setenv("EXACTMC_DATABASE_URL", "postgresql://db/fleet")
    assert default_registry_url(tmp_path) == "postgresql://db/fleet"
