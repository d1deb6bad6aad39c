"""Encrypted credential store shared by the tap and the target."""

from secret_store.store import SecretStore, SecretStoreError, generate_key

__all__ = ["SecretStore", "SecretStoreError", "generate_key"]
