"""Fidelity fixes found in review: behaviours where a client passing against the sandbox would
fail against the real Mailchimp API."""

from __future__ import annotations

import hashlib

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def _session(sandbox: MailchimpSandbox) -> requests.Session:
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    return session


def test_put_new_member_takes_status_if_new_over_status(
        mailchimp_sandbox: MailchimpSandbox) -> None:
    """Real PUT creates a new member with `status_if_new` even when `status` is sent too, so a
    client must not count on `status` to create someone unsubscribed."""
    session = _session(mailchimp_sandbox)
    members = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/members"
    created = session.put(f"{members}/{md5('nina@acme.nl')}", timeout=5, json={
        "email_address": "nina@acme.nl", "status": "unsubscribed",
        "status_if_new": "subscribed"})
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "subscribed"
    # On an existing member `status` overwrites, as before.
    again = session.put(f"{members}/{md5('nina@acme.nl')}", timeout=5, json={
        "email_address": "nina@acme.nl", "status": "unsubscribed",
        "status_if_new": "subscribed"})
    assert again.json()["status"] == "unsubscribed"
    # `status` alone still creates; a bad `status` is refused even when it would be unused.
    alone = session.put(f"{members}/{md5('olaf@acme.nl')}", timeout=5, json={
        "email_address": "olaf@acme.nl", "status": "transactional"})
    assert alone.json()["status"] == "transactional"
    bad = session.put(f"{members}/{md5('pia@acme.nl')}", timeout=5, json={
        "email_address": "pia@acme.nl", "status": "archived", "status_if_new": "subscribed"})
    assert bad.status_code == 400
    assert mailchimp_sandbox.member("pia@acme.nl") is None


def test_customer_put_checks_required_fields_even_when_the_customer_exists(
        mailchimp_sandbox: MailchimpSandbox) -> None:
    """PUT customers is a full upsert (id, email_address, opt_in_status required), like PUT
    products and orders; only PATCH may send part of a customer."""
    session = _session(mailchimp_sandbox)
    stores = f"{mailchimp_sandbox.api_base}/ecommerce/stores"
    assert session.post(stores, timeout=5, json={
        "id": "s1", "list_id": mailchimp_sandbox.list_id, "name": "S",
        "currency_code": "EUR"}).status_code == 200
    url = f"{stores}/s1/customers/C1"
    assert session.put(url, timeout=5, json={
        "id": "C1", "email_address": "quinn@acme.nl", "opt_in_status": False}).status_code == 200
    partial = session.put(url, timeout=5, json={"id": "C1", "first_name": "Quinn"})
    assert partial.status_code == 400
    assert {e["field"] for e in partial.json()["errors"]} <= {"email_address", "opt_in_status"}
    assert session.get(url, timeout=5).json()["first_name"] == ""
    patched = session.patch(url, timeout=5, json={"first_name": "Quinn"})
    assert patched.status_code == 200
    assert patched.json()["first_name"] == "Quinn"
