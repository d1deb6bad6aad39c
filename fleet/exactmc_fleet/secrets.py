"""A tenant's secrets in the encrypted store (what `remove` deletes)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from exactmc_fleet.registry import Tenant


def remove_tenant_secrets(tenant: Tenant, env: Mapping[str, str]) -> list[str]:
    """Delete the store documents of `tenant`; their names."""
    directory = Path(env.get("TAP_EXACTONLINE_TOKEN_STORE_PATH")
                     or Path(env["MELTANO_PROJECT_ROOT"]) / ".secrets")
    removed = []
    for path in sorted(directory.glob(f"{env['TAP_EXACTONLINE_TOKEN_STORE_NAME']}*.enc")):
        path.unlink(missing_ok=True)
        Path(f"{path}.lock").unlink(missing_ok=True)
        removed.append(path.name[: -len(".enc")])
    return removed
