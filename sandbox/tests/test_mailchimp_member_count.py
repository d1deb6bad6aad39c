"""`/_sandbox/lists/<id>/count`: how many members an audience holds, without listing them
(the demo's progress line polls it every 5 s; a full member dump costs O(audience) CPU)."""

from __future__ import annotations

import hashlib

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def test_count_follows_writes_and_is_not_an_api_call(mailchimp_sandbox: MailchimpSandbox) -> None:
    box = mailchimp_sandbox
    session = requests.Session()
    session.auth = ("anystring", box.api_key)
    count_url = f"{box.url}/_sandbox/lists/{box.list_id}/count"
    assert requests.get(count_url, timeout=5).json() == {"members": 0}
    for email in ("a@example.com", "b@example.com"):
        digest = hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()
        session.put(f"{box.api_base}/lists/{box.list_id}/members/{digest}", timeout=5,
                    json={"email_address": email, "status_if_new": "transactional"}
                    ).raise_for_status()
    calls = box.calls()["total"]
    assert requests.get(count_url, timeout=5).json() == {"members": 2}
    assert box.calls()["total"] == calls  # a control route: not counted as a Mailchimp call
    assert requests.get(f"{box.url}/_sandbox/lists/nope/count", timeout=5).status_code == 404
