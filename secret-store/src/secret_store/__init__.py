"""Encrypted credential store shared by the tap and the target, and the plumbing they share."""

from secret_store.environment import KEY_ENV, restrict_new_files, store_key
from secret_store.store import SecretStore, SecretStoreError, generate_key

__all__ = [
    "KEY_ENV", "SecretStore", "SecretStoreError", "generate_key", "restrict_new_files",
    "store_key",
]
