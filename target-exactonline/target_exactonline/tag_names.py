"""Exact's name put back on a cost-center tag renamed in Mailchimp when Exact's change is newer.

Why the way back does it and not the forward flow: target-mailchimp renames a tag only when the
name it is sent differs from the name it last gave that tag (kept in its audit database), so
the forward flow sending Exact's unchanged name again would change nothing. The way back is the
side that sees Mailchimp's name next to Exact's, so it renames the tag (static segment) itself:
one `PATCH /lists/{id}/segments/{id}` `{name}`, only when the names differ (a tag already equal
is never written). The PATCH gives the tag Exact's name, which is also the name target-mailchimp
remembers, so neither side writes again: the next way back reads the tag (its `updated_at`
moved) and finds it equal.

Credentials: the `mailchimp` document of the same encrypted store (`token_store_path`, key in
SECRET_STORE_KEY) that target-mailchimp and tap-mailchimp read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import backoff
import requests
from secret_store.mailchimp_auth import CredentialsError, resolve_connection

__all__ = ["CredentialsError", "MailchimpRefused", "MailchimpTags"]


class MailchimpRefused(Exception):
    """Mailchimp refused the rename, or stayed unusable after retries."""


class _Retryable(Exception):
    pass


class MailchimpTags:
    def __init__(self, config: Mapping[str, Any], max_tries: int = 5) -> None:
        self.base_url, auth = resolve_connection({
            "base_url": config.get("mailchimp_base_url"),
            "login_url": config.get("mailchimp_login_url"),
            "secret_store_path": config.get("token_store_path"),
            "secret_store_key": config.get("token_store_key"),
        })
        self._timeout = float(config.get("request_timeout") or 60)
        self._session = requests.Session()
        self._session.auth = auth
        self._session.headers["User-Agent"] = "target-exactonline"
        self._patch = backoff.on_exception(
            backoff.expo, _Retryable, max_tries=max_tries,
            factor=float(config.get("retry_initial_wait") or 1.0), max_value=60.0,
            jitter=backoff.full_jitter)(self._patch_once)
        self.calls = 0

    def rename(self, list_id: str, segment_id: int, name: str) -> None:
        """Idempotent, so a lost or garbled answer is simply sent again."""
        try:
            self._patch(f"lists/{list_id}/segments/{segment_id}", name)
        except _Retryable as exc:
            raise MailchimpRefused(f"Mailchimp unavailable: {exc}") from None

    def _patch_once(self, path: str, name: str) -> None:
        self.calls += 1
        try:
            answer = self._session.patch(f"{self.base_url}/{path}", json={"name": name},
                                         timeout=self._timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(type(exc).__name__) from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise _Retryable(f"HTTP {answer.status_code}")
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else ""
            raise MailchimpRefused(f"HTTP {answer.status_code} {detail}".strip())
        if not isinstance(body, dict) or str(body.get("name") or "") != name:
            raise _Retryable(f"unreadable answer (HTTP {answer.status_code})")
