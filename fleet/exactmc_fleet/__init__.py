"""A fleet of tenants: each one Exact Online company paired with one Mailchimp audience.

`registry` records them (one database URL, like every store), `runner` runs one tenant's Meltano
job with its own system directory, state IDs, stores and secrets, `cli` is `exactmc-tenants`.
"""

from exactmc_fleet.registry import Tenant, TenantError, TenantRegistry

__all__ = ["Tenant", "TenantError", "TenantRegistry"]
