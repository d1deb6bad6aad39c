"""Encrypted credential store shared by the tap and the target, and the plumbing they share."""

from secret_store.environment import KEY_ENV, restrict_new_files, store_key
from secret_store.store import (
    SecretStore,
    SecretStoreError,
    generate_key,
    remove_tenant,
    store_location,
)

__all__ = [
    "KEY_ENV", "SecretStore", "SecretStoreError", "generate_key", "remove_tenant",
    "restrict_new_files", "store_key", "store_location",
]
