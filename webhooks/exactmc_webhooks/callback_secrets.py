"""The two secrets the service checks deliveries with, both from the encrypted store.

- Exact's webhook secret: the tap's credentials entry (`<token_store_name>-credentials`, field
  `webhook_secret`, put there by `meltano invoke tap-exactonline:set-credential webhook_secret`).
- The Mailchimp callback secret: generated here (`exactmc-webhooks mailchimp-url`), 256 random
  bits in the URL path, since Mailchimp signs nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from secret_store import SecretStore, SecretStoreError, store_key
from tap_exactonline.credentials import credentials_name

FIELD = "secret"


def open_store(config: dict[str, Any]) -> SecretStore | None:
    key = store_key(config, "secret_store_key")
    if not key:
        return None
    # secret_store_path, else EXACTMC_DATABASE_URL, else the project's `.secrets`.
    return SecretStore(config.get("secret_store_path"), key)


def exact_secret(config: dict[str, Any]) -> str | None:
    if config.get("webhook_secret"):
        return str(config["webhook_secret"])
    store = open_store(config)
    if store is None or not (config.get("client_id") or config.get("token_store_name")):
        return None
    stored = store.read(credentials_name(config)) or {}
    return stored.get("webhook_secret") or None


def mailchimp_secret(config: dict[str, Any], create: bool = False) -> str | None:
    """The callback secret; with `create`, made (once) when the store has none."""
    if config.get("mailchimp_webhook_secret"):
        return str(config["mailchimp_webhook_secret"])
    store = open_store(config)
    if store is None:
        if create:
            raise SecretStoreError("No store key: set SECRET_STORE_KEY")
        return None
    name = config["mailchimp_secret_name"]
    with store.locked(name):  # two `mailchimp-url` at once agree on one secret
        found = (store.read(name) or {}).get(FIELD)
        if found or not create:
            return found or None
        made = secrets.token_urlsafe(32)
        store.write(name, {FIELD: made})
        return made
