"""Credentials: shared with tap-mailchimp, so they live in the secret-store package."""

from secret_store.mailchimp_auth import (
    DEFAULT_LOGIN_URL,
    SECRET_NAME,
    ApiKeyAuth,
    BearerAuth,
    Credentials,
    CredentialsError,
    data_center_from_key,
    load_credentials,
    oauth_api_endpoint,
    resolve_connection,
)

__all__ = [
    "DEFAULT_LOGIN_URL", "SECRET_NAME", "ApiKeyAuth", "BearerAuth", "Credentials",
    "CredentialsError", "data_center_from_key", "load_credentials", "oauth_api_endpoint",
    "resolve_connection",
]
