"""`/batches`: queued operations, their status progression and the .tar.gz of results."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def member_op(sandbox: MailchimpSandbox, email: str, op_id: str) -> dict:
    return {"method": "PUT", "path": f"/lists/{sandbox.list_id}/members/{md5(email)}",
            "operation_id": op_id,
            "body": json.dumps({"email_address": email, "status_if_new": "subscribed"})}


def wait_until_finished(session: requests.Session, url: str, seen: list[str]) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = session.get(url, timeout=5).json()
        if not seen or seen[-1] != batch["status"]:
            seen.append(batch["status"])
        if batch["status"] == "finished":
            return batch
        time.sleep(0.01)
    raise AssertionError(f"batch never finished; statuses seen: {seen}")


def read_results(url: str) -> list[list[dict]]:
    archive = requests.get(url, timeout=5)
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        return [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.isfile()]


def test_lifecycle_and_results(mailchimp_sandbox_factory) -> None:
    sandbox: MailchimpSandbox = mailchimp_sandbox_factory(
        batch_start_delay=0.2, batch_operation_delay=0.1, batch_results_per_file=2)
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    operations = [
        member_op(sandbox, "a@acme.nl", "op-a"),
        member_op(sandbox, "test@test.com", "op-fake"),
        member_op(sandbox, "b@acme.nl", "op-b"),
        {"method": "GET", "path": f"/lists/{sandbox.list_id}/members",
         "params": {"count": 1}, "operation_id": "op-list"},
        {"method": "DELETE", "path": f"/lists/{sandbox.list_id}/members/{md5('b@acme.nl')}",
         "operation_id": "op-archive"},
    ]
    submitted = session.post(f"{sandbox.api_base}/batches", json={"operations": operations},
                             timeout=5)
    assert submitted.status_code == 200
    batch = submitted.json()
    assert batch["status"] == "pending" and batch["total_operations"] == 5
    assert batch["response_body_url"] == ""

    seen: list[str] = []
    finished = wait_until_finished(session, f"{sandbox.api_base}/batches/{batch['id']}", seen)
    assert seen[0] == "pending" and "started" in seen and seen[-1] == "finished"
    assert seen.index("pending") < seen.index("started")
    assert finished["finished_operations"] == 5
    assert finished["errored_operations"] == 1
    assert finished["response_body_url"].startswith(sandbox.url)

    files = read_results(finished["response_body_url"])
    assert len(files) == 3  # two results per file
    results = {r["operation_id"]: r for chunk in files for r in chunk}
    assert set(results) == {"op-a", "op-fake", "op-b", "op-list", "op-archive"}
    assert results["op-a"]["status_code"] == 200
    assert json.loads(results["op-a"]["response"])["status"] == "subscribed"
    assert results["op-fake"]["status_code"] == 400
    assert "looks fake" in json.loads(results["op-fake"]["response"])["detail"]
    assert json.loads(results["op-list"]["response"])["total_items"] == 2
    assert results["op-archive"] == {"status_code": 204, "operation_id": "op-archive",
                                     "response": ""}
    assert {m["email_address"]: m["status"] for m in sandbox.members()} == {
        "a@acme.nl": "subscribed", "b@acme.nl": "archived"}

    # Operations replayed inside the batch are not separate connections.
    by_endpoint = sandbox.calls()["by_endpoint"]
    assert by_endpoint["POST /batches"] == 1
    assert "PUT /lists/*/members/*" not in by_endpoint


def test_one_batch_runs_at_a_time(mailchimp_sandbox_factory) -> None:
    sandbox: MailchimpSandbox = mailchimp_sandbox_factory(batch_start_delay=0.0,
                                                          batch_operation_delay=0.05)
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    ids = [session.post(f"{sandbox.api_base}/batches", timeout=5, json={"operations": [
        member_op(sandbox, f"{batch}{i}@acme.nl", f"{batch}{i}") for i in range(4)]}).json()["id"]
        for batch in ("x", "y")]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        statuses = [session.get(f"{sandbox.api_base}/batches/{i}", timeout=5).json()["status"]
                    for i in ids]
        if statuses == ["finished", "finished"]:
            break
        time.sleep(0.01)
    first, second = (sandbox.context.batches.batches[i] for i in ids)
    assert first.ran_until is not None and second.ran_from is not None
    assert second.ran_from >= first.ran_until  # the second waited for the first
    listed = session.get(f"{sandbox.api_base}/batches", timeout=5).json()
    assert {b["id"] for b in listed["batches"]} == set(ids)
    assert len(sandbox.members()) == 8


def test_invalid_batches(mailchimp_sandbox: MailchimpSandbox) -> None:
    session = requests.Session()
    session.auth = ("u", mailchimp_sandbox.api_key)
    url = f"{mailchimp_sandbox.api_base}/batches"
    not_string = session.post(url, timeout=5, json={"operations": [
        {"method": "PUT", "path": "/lists/x/members/y", "body": {"email_address": "a@b.nl"}}]})
    assert not_string.status_code == 400
    assert not_string.json()["errors"][0]["field"] == "operations.0.body"
    bad_method = session.post(url, json={"operations": [{"method": "GO", "path": "/x"}]},
                              timeout=5)
    assert bad_method.status_code == 400
    assert session.get(f"{url}/nope", timeout=5).status_code == 404
    assert requests.post(url, json={"operations": []}, timeout=5).status_code == 401
