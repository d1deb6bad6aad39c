"""Mailchimp credentials: where they come from, how they are sent, which data center they serve.

Shared by target-mailchimp and tap-mailchimp (both read the store's `mailchimp` document), so
neither plugin has to install the other to reach the same key or token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import backoff
import requests
from requests.auth import AuthBase, HTTPBasicAuth

DEFAULT_LOGIN_URL = "https://login.mailchimp.com"
SECRET_NAME = "mailchimp"  # noqa: S105 - a document name, not a secret


class CredentialsError(Exception):
    """No usable credential. Messages never contain the credential itself."""


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = field(default=None, repr=False)
    oauth_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never print a secret by accident
        kind = "api_key" if self.api_key else "oauth_token" if self.oauth_token else "none"
        return f"Credentials({kind})"


class BearerAuth(AuthBase):
    """OAuth token as `Authorization: Bearer ...` (tokens do not expire, nothing to refresh)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class ApiKeyAuth(HTTPBasicAuth):
    """HTTP Basic with any user name and the API key as password."""

    def __init__(self, api_key: str) -> None:
        super().__init__("exactmc", api_key)  # any user name works

    def __repr__(self) -> str:
        return "ApiKeyAuth(***)"


def load_credentials(config: Mapping[str, Any]) -> Credentials:
    """Config first; otherwise the shared encrypted store (document `mailchimp`)."""
    if config.get("api_key") or config.get("oauth_token"):
        return Credentials(config.get("api_key"), config.get("oauth_token"))
    # The store: `secret_store_path`, else EXACTMC_DATABASE_URL, else the project's `.secrets`.
    store_path, store_key = config.get("secret_store_path"), config.get("secret_store_key")
    if store_key:
        from secret_store import SecretStore, SecretStoreError

        try:
            store = SecretStore(store_path, store_key)
            document = store.read(SECRET_NAME) or {}
        except SecretStoreError as exc:
            raise CredentialsError(f"Cannot read the secret store: {exc}") from None
        if document.get("api_key") or document.get("oauth_token"):
            return Credentials(document.get("api_key"), document.get("oauth_token"))
        raise CredentialsError(
            f"The secret store at {store.label} has no '{SECRET_NAME}' credential; store one with "
            "`target-mailchimp-admin set-credential`."
        )
    raise CredentialsError(
        "No Mailchimp credential: set `api_key` or `oauth_token`, or `secret_store_path` and "
        "the store's key (the SECRET_STORE_KEY environment variable, or `secret_store_key`) "
        "pointing at a store holding one."
    )


def data_center_from_key(api_key: str) -> str:
    """API keys end in `-<dc>`, e.g. `...-us6`."""
    prefix, sep, dc = api_key.rpartition("-")
    if not sep or not prefix or not dc.isalnum():
        raise CredentialsError(
            "The API key has no data-center suffix (expected '<key>-<dc>', e.g. '...-us6')."
        )
    return dc


class _Unanswered(Exception):
    """The metadata call got no usable answer (transport, 429/5xx, unreadable body)."""


def oauth_api_endpoint(token: str, login_url: str = DEFAULT_LOGIN_URL, *, max_tries: int = 8,
                       backoff_factor: float = 1.0) -> str:
    """Ask Mailchimp's metadata endpoint where this token's account lives.

    No usable answer is retried with backoff, then a CredentialsError: an unreadable body
    is never taken for an answer naming no data center.
    """
    ask = backoff.on_exception(backoff.expo, _Unanswered, max_tries=max(1, max_tries),
                               factor=backoff_factor, max_value=60.0,
                               jitter=backoff.full_jitter)(_ask_metadata)
    try:
        status, body = ask(token, login_url)
    except _Unanswered as exc:
        raise CredentialsError(f"OAuth metadata unreachable ({exc})") from None
    # A bad token still gets HTTP 200, with {"error": "invalid_token"} in the body.
    if status >= 400 or body.get("error"):
        raise CredentialsError(
            f"The OAuth token was rejected by the metadata endpoint "
            f"({body.get('error') or 'HTTP ' + str(status)})."
        )
    if body.get("api_endpoint"):
        return str(body["api_endpoint"]).rstrip("/")
    if body.get("dc"):
        return f"https://{body['dc']}.api.mailchimp.com"
    raise CredentialsError("The OAuth metadata answer names no data center.")


def _ask_metadata(token: str, login_url: str) -> tuple[int, dict[str, Any]]:
    try:
        response = requests.get(
            f"{login_url.rstrip('/')}/oauth2/metadata",
            headers={"Authorization": f"OAuth {token}"},
            timeout=30,
        )
    except requests.RequestException as exc:
        raise _Unanswered(type(exc).__name__) from None
    status = response.status_code
    if status == 429 or status >= 500:
        raise _Unanswered(f"HTTP {status}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if status >= 400:
            return status, {}
        raise _Unanswered(f"unreadable answer, HTTP {status}")
    return status, body


def resolve_connection(config: Mapping[str, Any]) -> tuple[str, AuthBase]:
    """(API base URL ending in /3.0, requests auth) for this config."""
    credentials = load_credentials(config)
    override = config.get("base_url")
    if credentials.api_key:
        auth: AuthBase = ApiKeyAuth(credentials.api_key)
        base = override or f"https://{data_center_from_key(credentials.api_key)}.api.mailchimp.com/3.0"
    else:
        token = str(credentials.oauth_token)
        auth = BearerAuth(token)
        base = override or (
            oauth_api_endpoint(token, config.get("login_url") or DEFAULT_LOGIN_URL,
                               max_tries=int(config.get("retry_max_tries") or 8),
                               backoff_factor=float(config.get("retry_backoff_factor", 1.0)))
            + "/3.0"
        )
    return base.rstrip("/"), auth
