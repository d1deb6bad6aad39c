"""The tap's secrets: from the encrypted store, its key from the environment.

Under Meltano no secret is a setting (Meltano writes settings into a plain JSON file that a kill
leaves behind): the client secret, the bootstrap refresh token and the webhook secret live in
the store, in the document `<token_store_name>-credentials`, put there by
`tap-exactonline-set-credential FIELD` (`meltano invoke tap-exactonline:set-credential FIELD`),
and the store's key comes from `SECRET_STORE_KEY`. A plain-Singer user may still put any of them
in a config file of their own: a value in the config wins over the store.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secret_store import SecretStore, SecretStoreError, store_key, store_location
from secret_store.settings import coerce_numbers
from secret_store.store import is_url

CREDENTIAL_FIELDS = ("client_secret", "refresh_token", "webhook_secret")


def token_store_name(config: Mapping[str, Any]) -> str:
    """The store entry of this company's tokens: `token_store_name`, else one per OAuth app."""
    if config.get("token_store_name"):
        return str(config["token_store_name"])
    # Exact client ids are GUIDs, often written with braces; the store accepts [A-Za-z0-9._-].
    return "exactonline-" + re.sub(r"[^A-Za-z0-9._-]", "", str(config.get("client_id") or ""))


def credentials_name(config: Mapping[str, Any]) -> str:
    return token_store_name(config) + "-credentials"


def prepare_config(config: Mapping[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The config the tap works with: typed numbers, the store key, secrets from the store.

    Lives only in memory. Leaves missing what it cannot find, so validation names it.
    """
    prepared = coerce_numbers(dict(config), schema)
    key = store_key(prepared, "token_store_key")
    if key:
        prepared["token_store_key"] = key
    # The setting, else the fleet's EXACTMC_DATABASE_URL, else the project's `.secrets`.
    location = prepared["token_store_path"] = store_location(prepared.get("token_store_path"))
    missing = [f for f in CREDENTIAL_FIELDS if not prepared.get(f)]
    exists = is_url(location) or Path(location).is_dir()
    if missing and key and exists and prepared.get("client_id"):
        try:
            stored = SecretStore(location, key).read(
                credentials_name(prepared)) or {}
        except SecretStoreError as exc:
            raise SecretStoreError(f"Cannot read the tap's credentials: {exc}") from None
        prepared.update({f: stored[f] for f in missing if stored.get(f)})
    return prepared


def main(argv: list[str] | None = None) -> int:
    """`tap-exactonline-set-credential FIELD`: store one secret, read from standard input."""
    parser = argparse.ArgumentParser(
        prog="tap-exactonline-set-credential",
        description="Store one of the tap's secrets (read from stdin) in the encrypted store.",
    )
    parser.add_argument("field", choices=CREDENTIAL_FIELDS)
    parser.add_argument("--config", action="append", default=[],
                        help="Config JSON file (repeatable) or ENV for TAP_EXACTONLINE_* vars.")
    args = parser.parse_args(argv)
    from tap_exactonline.authorize import AuthorizeError, load_config

    try:
        config = load_config(args.config or ["ENV"],
                             required=("client_id", "token_store_key"))
    except (AuthorizeError, SecretStoreError) as exc:
        print(f"error: {exc} (the key comes from SECRET_STORE_KEY)", file=sys.stderr)
        return 2
    value = sys.stdin.readline().strip()
    if not value:
        print("No value on standard input.", file=sys.stderr)
        return 2
    name = credentials_name(config)
    try:
        store = SecretStore(config["token_store_path"], config["token_store_key"])
        store.update(name, **{args.field: value})
    except SecretStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Stored {args.field} in {store.label} (as {name}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
