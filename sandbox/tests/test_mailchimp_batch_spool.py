"""`/batches` keep their queued operations and finished result archives off the heap (issue 9:
the sandbox reached 352 MB at 100k accounts once the target sent its bulk work as batches).

Both live in anonymous temporary files (gone with the process, mode 0600, never a name on
disk); what the API answers is unchanged (test_mailchimp_batches.py and the target's tests).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from typing import Any

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox
from exactmc_sandbox.mailchimp.member_ops import MemberWriter
from held_memory import held_by_sandbox


def _session(sandbox: MailchimpSandbox) -> requests.Session:
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    return session


def _submit(session: requests.Session, sandbox: MailchimpSandbox,
            operations: list[dict[str, Any]]) -> str:
    answer = session.post(f"{sandbox.api_base}/batches", json={"operations": operations},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def _finished(session: requests.Session, sandbox: MailchimpSandbox, batch_id: str) -> dict:
    deadline = time.monotonic() + 30
    while (answer := session.get(f"{sandbox.api_base}/batches/{batch_id}",
                                 timeout=5).json())["status"] != "finished":
        assert time.monotonic() < deadline, answer
        time.sleep(0.01)
    return answer


def _results(session: requests.Session, url: str) -> list[dict[str, Any]]:
    archive = session.get(url, timeout=10)
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        return [r for m in tar.getmembers() if m.isfile() for r in json.load(tar.extractfile(m))]


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_finished_archives_are_not_held_in_memory(mailchimp_sandbox_factory: Any) -> None:
    sandbox = mailchimp_sandbox_factory(batch_start_delay=0)
    state = sandbox.context.state
    writer = MemberWriter(state, state.lists[sandbox.list_id])
    for n in range(40):  # distinct answers, so the archives do not shrink to nothing
        writer.upsert(f"p{n}@acme.nl", {"status_if_new": "subscribed", "merge_fields": {
            "FNAME": os.urandom(12).hex(), "LNAME": os.urandom(12).hex()}})
    session = _session(sandbox)
    operations = [{"method": "GET", "path": f"/lists/{sandbox.list_id}/members",
                   "params": {"count": 40, "offset": n % 3}, "operation_id": f"op-{n}"}
                  for n in range(60)]
    _finished(session, sandbox, _submit(session, sandbox, operations[:2]))  # warm up
    files = _open_files()
    answers, kept = held_by_sandbox(
        lambda: [_finished(session, sandbox, _submit(session, sandbox, operations))
                 for _ in range(3)])
    archived = 0
    for answer in answers:
        archived += len(session.get(answer["response_body_url"], timeout=10).content)
        results = _results(session, answer["response_body_url"])
        assert [r["operation_id"] for r in results] == [f"op-{n}" for n in range(60)]
        assert all(r["status_code"] == 200 for r in results)
        assert len(json.loads(results[-1]["response"])["members"]) == 40 - 59 % 3
    assert kept < archived / 4, (kept, archived)  # held in memory: >= archived
    assert _open_files() <= files + 2  # not a file per batch: a long run would run out


def test_queued_operations_are_not_held_in_memory(mailchimp_sandbox_factory: Any) -> None:
    # Long enough that it is still queued while measured (a started batch holds a compressor).
    sandbox = mailchimp_sandbox_factory(batch_start_delay=2)
    session = _session(sandbox)
    operations = [{"method": "PUT", "path": f"/lists/{sandbox.list_id}/members/{n:032x}",
                   "operation_id": f"op-{n}", "body": json.dumps({
                       "email_address": f"person.{n}@acme.nl", "status_if_new": "subscribed",
                       "merge_fields": {"FNAME": f"Anna {n}", "LNAME": os.urandom(20).hex()}})}
                  for n in range(1500)]
    size = len(json.dumps({"operations": operations}))
    _submit(session, sandbox, operations[:1])  # warm up
    batch_id, kept = held_by_sandbox(lambda: _submit(session, sandbox, operations))
    assert kept < size / 10, (kept, size)  # held parsed: ~2x the request
    answer = _finished(session, sandbox, batch_id)
    assert answer["total_operations"] == answer["finished_operations"] == 1500
    assert answer["errored_operations"] == 1500
    results = _results(session, answer["response_body_url"])
    assert [r["operation_id"] for r in results] == [f"op-{n}" for n in range(1500)]
    assert json.loads(results[7]["response"])["title"] == "Invalid Resource"  # hash mismatch
