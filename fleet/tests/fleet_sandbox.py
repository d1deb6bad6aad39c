"""Helpers of the fleet tests (importable as `fleet_sandbox`: fleet/tests is on pythonpath)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exactmc_fleet.registry import Tenant
from secret_store import SecretStore


@dataclass
class SandboxTenant:
    tenant: Tenant
    exact: Any  # ExactSandbox
    mailchimp: Any  # MailchimpSandbox
    secrets: dict[str, str] = field(default_factory=dict)  # none may reach a file unencrypted


def sandbox_settings(exact: Any, mailchimp: Any) -> dict[str, str]:
    return {
        "TAP_EXACTONLINE_BASE_URL": exact.base_url("nl"),
        "TARGET_EXACTONLINE_BASE_URL": exact.base_url("nl"),
        "TARGET_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TARGET_MAILCHIMP_LOGIN_URL": mailchimp.url,
        "TAP_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TAP_MAILCHIMP_LOGIN_URL": mailchimp.url,
        "TARGET_EXACTONLINE_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TARGET_EXACTONLINE_MAILCHIMP_LOGIN_URL": mailchimp.url,
    }


def store_tenant_secrets(project: Path, env: dict[str, str], tenant: Tenant, *,
                         client_secret: str, refresh_token: str, api_key: str) -> None:
    """What `exactmc-tenants add` + `authorize` leave in the store, written directly (fast):
    in the tenant's namespace of the fleet database, else of the project's `.secrets`."""
    location = env.get("EXACTMC_DATABASE_URL") or str(project / ".secrets")
    store = SecretStore(location, env["SECRET_STORE_KEY"], tenant=tenant.name)
    store.write(f"exactonline-{tenant.exact_client_id}-credentials",
                {"client_secret": client_secret, "refresh_token": refresh_token})
    store.write("mailchimp", {"api_key": api_key})
