"""`fields` / `exclude_fields` on the bulk writes' answers (batch subscribe, segment updates),
called directly and as `/batches` operations (their `params`): Mailchimp's partial responses,
comma-separated, dotted into sub-objects and walked through lists (issue 9: the target asks
only for what it reads)."""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox

SUBSCRIBE_FIELDS = ("new_members.email_address,new_members.status,new_members.merge_fields.FNAME,"
                    "updated_members.email_address,errors,total_created,error_count")


def _session(sandbox: MailchimpSandbox) -> requests.Session:
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    return session


def _subscribe_body(*emails: str) -> dict[str, Any]:
    return {"members": [{"email_address": e, "status": "subscribed",
                         "merge_fields": {"FNAME": e[0].upper(), "LNAME": "X"}} for e in emails]}


def _segment(sandbox: MailchimpSandbox, session: requests.Session) -> int:
    created = session.post(f"{sandbox.api_base}/lists/{sandbox.list_id}/segments",
                           json={"name": "VIP", "static_segment": []}, timeout=5)
    return created.json()["id"]


def test_batch_subscribe_answers_only_the_selected_fields(
    mailchimp_sandbox: MailchimpSandbox,
) -> None:
    session = _session(mailchimp_sandbox)
    url = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}"
    session.post(url, json=_subscribe_body("old@acme.nl"), timeout=5)
    body = _subscribe_body("ann@acme.nl", "old@acme.nl", "test@test.com")
    body["update_existing"] = True
    answer = session.post(url, json=body, params={"fields": SUBSCRIBE_FIELDS}, timeout=5).json()
    assert answer == {
        "new_members": [{"email_address": "ann@acme.nl", "status": "subscribed",
                         "merge_fields": {"FNAME": "A"}}],
        "updated_members": [{"email_address": "old@acme.nl"}],
        "errors": [{"email_address": "test@test.com", "error": "test@test.com looks fake or "
                    "invalid, please enter a real email address.", "error_code": "ERROR_GENERIC",
                    "field": "", "field_message": ""}],
        "total_created": 1, "error_count": 1}
    # exclude_fields: everything but the members' lists.
    excluded = session.post(url, json=_subscribe_body("bob@acme.nl"),
                            params={"exclude_fields": "new_members,updated_members,_links"},
                            timeout=5).json()
    assert excluded == {"errors": [], "total_created": 1, "total_updated": 0, "error_count": 0}
    # The changes are made whatever the answer shows.
    assert {m["email_address"] for m in mailchimp_sandbox.members()} == {
        "old@acme.nl", "ann@acme.nl", "bob@acme.nl"}


def test_segment_update_answers_only_the_selected_fields(
    mailchimp_sandbox: MailchimpSandbox,
) -> None:
    session = _session(mailchimp_sandbox)
    session.post(f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}",
                 json=_subscribe_body("ann@acme.nl"), timeout=5)
    segment = _segment(mailchimp_sandbox, session)
    url = f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/segments/{segment}"
    answer = session.post(url, json={"members_to_add": ["ann@acme.nl", "nobody@acme.nl"]},
                          params={"fields": "errors,total_added,members_added.email_address"},
                          timeout=5).json()
    assert answer == {"members_added": [{"email_address": "ann@acme.nl"}],
                      "errors": [{"email_addresses": ["nobody@acme.nl"], "error": "Email "
                                  "addresses do not belong to this list or are archived"}],
                      "total_added": 1}
    assert mailchimp_sandbox.member("ann@acme.nl")["tags"]


def _finished(session: requests.Session, sandbox: MailchimpSandbox, batch_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = session.get(f"{sandbox.api_base}/batches/{batch_id}", timeout=5).json()
        if batch["status"] == "finished":
            return batch
        time.sleep(0.02)
    raise AssertionError("the batch never finished")


def test_batch_operations_params_select_the_fields_of_their_answers(
    mailchimp_sandbox: MailchimpSandbox,
) -> None:
    session = _session(mailchimp_sandbox)
    list_id = mailchimp_sandbox.list_id
    segment = _segment(mailchimp_sandbox, session)
    operations = [
        {"method": "POST", "path": f"/lists/{list_id}", "operation_id": "subscribe",
         "params": {"fields": "new_members.email_address,errors,total_created"},
         "body": json.dumps(_subscribe_body("ann@acme.nl", "bob@acme.nl"))},
        {"method": "POST", "path": f"/lists/{list_id}/segments/{segment}", "operation_id": "tag",
         "params": {"fields": "errors,total_added"},
         "body": json.dumps({"members_to_add": ["ann@acme.nl"]})},
        {"method": "POST", "path": f"/lists/{list_id}/segments/{segment}", "operation_id": "whole",
         "body": json.dumps({"members_to_add": ["bob@acme.nl"]})},
    ]
    submitted = session.post(f"{mailchimp_sandbox.api_base}/batches",
                             json={"operations": operations}, timeout=5).json()
    batch = _finished(session, mailchimp_sandbox, submitted["id"])
    archive = requests.get(batch["response_body_url"], timeout=5).content
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        results = {r["operation_id"]: json.loads(r["response"])
                   for m in tar.getmembers() if m.isfile()
                   for r in json.load(tar.extractfile(m))}
    assert results["subscribe"] == {"new_members": [{"email_address": "ann@acme.nl"},
                                                    {"email_address": "bob@acme.nl"}],
                                    "errors": [], "total_created": 2}
    assert results["tag"] == {"errors": [], "total_added": 1}
    # Without `fields` the whole answer, members and all.
    assert results["whole"]["members_added"][0]["email_address"] == "bob@acme.nl"
    assert "merge_fields" in results["whole"]["members_added"][0]
