"""Addresses as Mailchimp's help describes them: UTF-8 in the domain is allowed, in the part
before the @ it is not ("we block direcciónelectrónica@domain.com ... but allow
test@ñoñó1234.com")."""

from __future__ import annotations

import hashlib

import pytest
import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def put(sandbox: MailchimpSandbox, email: str) -> requests.Response:
    digest = hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()
    return requests.put(f"{sandbox.api_base}/lists/{sandbox.list_id}/members/{digest}",
                        auth=("any", sandbox.api_key), timeout=5,
                        json={"email_address": email, "status_if_new": "subscribed"})


@pytest.mark.parametrize("email", ["user@müller.de", "user@xn--mller-kva.de",
                                   "test@ñoñó1234.com"])
def test_internationalised_domains_are_accepted(mailchimp_sandbox, email):
    assert put(mailchimp_sandbox, email).status_code == 200


@pytest.mark.parametrize("email", ["jürgen@example.de", "direcciónelectrónica@domain.com",
                                   "user@müller..de"])
def test_utf8_before_the_at_or_a_broken_domain_is_refused(mailchimp_sandbox, email):
    response = put(mailchimp_sandbox, email)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"{email} looks fake or invalid, please enter a real email address.")
