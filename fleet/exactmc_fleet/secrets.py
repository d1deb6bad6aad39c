"""A tenant's secrets in the encrypted store (what `remove` deletes).

The store keeps a tenant's documents as `<tenant>.<name>` (EXACTMC_TENANT is set for its runs),
wherever the plugins keep them: their store settings, else the fleet database, else the
project's `.secrets`. `remove` deletes the tenant's documents in every one of those.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from secret_store import remove_tenant
from secret_store.database import DATABASE_URL_ENV

from exactmc_fleet.registry import Tenant

STORE_SETTINGS = ("TAP_EXACTONLINE_TOKEN_STORE_PATH", "TARGET_EXACTONLINE_TOKEN_STORE_PATH",
                  "TARGET_MAILCHIMP_SECRET_STORE_PATH", "TAP_MAILCHIMP_SECRET_STORE_PATH",
                  "WEBHOOKS_SECRET_STORE_PATH")


def store_locations(env: Mapping[str, str]) -> list[str]:
    """Every store a tenant's plugins may use, given the tenant's environment."""
    locations = [env[name] for name in STORE_SETTINGS if env.get(name, "").strip()]
    if env.get(DATABASE_URL_ENV, "").strip():
        locations.append(env[DATABASE_URL_ENV].strip())
    locations.append(str(Path(env["MELTANO_PROJECT_ROOT"]) / ".secrets"))
    return list(dict.fromkeys(locations))


def remove_tenant_secrets(tenant: Tenant, env: Mapping[str, str]) -> list[str]:
    """Delete the store documents of `tenant`; their names."""
    removed = []
    for location in store_locations(env):
        removed += remove_tenant(location, tenant.name)
    return removed
