"""Unreadable answers and outages are retried errors, never "no data"; the store's credentials."""

from __future__ import annotations

from typing import Any

import pytest
from secret_store import SecretStore, generate_key
from tap_mailchimp.client import MailchimpReadError
from tap_mailchimp.testing import run_tap

MEMBERS = r"/lists/[^/]+/members$"


def _unsubscribed(sandbox: Any, audience: Any, *emails: str) -> None:
    audience.subscribe(*emails)
    for email in emails:
        sandbox.set_member_status(email, "unsubscribed")


@pytest.mark.parametrize("fault", [
    {"kind": "garble"},                       # a 2xx body cut in half
    {"kind": "garble", "body": ""},           # an empty 2xx body
    {"kind": "garble", "body": '{"total_items": 0}'},  # JSON without the members
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 429},
    {"kind": "drop"},
])
def test_a_bad_answer_is_retried_not_taken_for_no_data(mailchimp_sandbox, audience, config,
                                                        fault):
    _unsubscribed(mailchimp_sandbox, audience, "ann@example.com")
    mailchimp_sandbox.add_fault(path=MEMBERS, method="GET", count=1, **fault)

    records, _ = run_tap(config)

    assert [r["email"] for r in records["mailing_exclusions"]] == ["ann@example.com"]


def test_a_lasting_outage_fails_the_run(mailchimp_sandbox,
                                                                     audience, config):
    _unsubscribed(mailchimp_sandbox, audience, "ann@example.com")
    mailchimp_sandbox.add_fault(path=MEMBERS, method="GET", kind="garble", count=10_000)

    with pytest.raises(MailchimpReadError, match="unreadable answer"):
        run_tap(config, {"bookmarks": {}})


def test_credentials_from_the_encrypted_store(mailchimp_sandbox, audience, config, tmp_path,
                                              monkeypatch):
    _unsubscribed(mailchimp_sandbox, audience, "ann@example.com")
    key = generate_key()
    store_path = tmp_path / "secrets"
    SecretStore(store_path, key).write("mailchimp", {"api_key": mailchimp_sandbox.api_key})
    monkeypatch.setenv("SECRET_STORE_KEY", key)
    config = {k: v for k, v in config.items() if k != "api_key"}

    records, _ = run_tap({**config, "secret_store_path": str(store_path)})

    assert [r["email"] for r in records["mailing_exclusions"]] == ["ann@example.com"]


def test_numbers_as_text_work(mailchimp_sandbox, config):
    # Meltano passes `kind: string` settings (and env values) as text.
    run_tap({**config, "retry_backoff_factor": "0.01", "request_timeout": "2.5",
             "retry_max_tries": "3"})
