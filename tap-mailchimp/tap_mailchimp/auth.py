"""Credentials: the same `mailchimp` document of the encrypted store target-mailchimp reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from requests.auth import AuthBase
from secret_store.mailchimp_auth import CredentialsError, resolve_connection

__all__ = ["CredentialsError", "connection"]


def connection(config: Mapping[str, Any]) -> tuple[str, AuthBase]:
    """(API base URL ending in /3.0, requests auth); CredentialsError names what is missing."""
    return resolve_connection(config)
