"""Re-reading the audience (issue 9): each read starts a second before the newest change the
previous one saw, so it lists that second's members again; a member listed exactly as this run
last saw it (address, status, last_changed) is passed over, not stored and remembered again.
What the run and the memory know stays what Mailchimp shows."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox
from target_mailchimp.audience import AudienceView
from target_mailchimp.audience_memory import AudienceMemory
from target_mailchimp.audit import AuditStore
from target_mailchimp.client import MailchimpClient

LONG_AGO = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


def test_a_reread_member_unchanged_is_not_remembered_again(
    mailchimp_sandbox: MailchimpSandbox, database_url: str, tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))
    sandbox = mailchimp_sandbox
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    emails = [f"r{i:02d}@example.com" for i in range(30)]
    # One batch: the members share their second (or two), so the next read lists them again.
    session.post(f"{sandbox.api_base}/lists/{sandbox.list_id}", timeout=30, json={
        "members": [{"email_address": e, "status": "subscribed"} for e in emails]})

    audit = AuditStore(database_url, "run-1")
    memory = AudienceMemory(audit.engine, sandbox.list_id)
    remembered: list[set[str]] = []
    remember = memory.remember

    def spy(members: dict[str, Any], *args: Any) -> None:
        remembered.append(set(members))
        remember(members, *args)

    monkeypatch.setattr(memory, "remember", spy)
    client = MailchimpClient(sandbox.api_base, ("u", sandbox.api_key))
    view = AudienceView(client, sandbox.list_id, memory)
    view.changed_since(LONG_AGO)
    assert remembered == [set(emails)]

    changed = emails[7]
    subscriber = hashlib.md5(changed.encode()).hexdigest()  # noqa: S324 (Mailchimp's id)
    session.patch(f"{sandbox.api_base}/lists/{sandbox.list_id}/members/{subscriber}",
                  json={"status": "unsubscribed"}, timeout=30).raise_for_status()
    # What the next read lists: the changed member and the unchanged ones of the last second.
    listed = session.get(f"{sandbox.api_base}/lists/{sandbox.list_id}/members", timeout=30,
                         params={"since_last_changed": view._cursor.isoformat(),
                                 "count": 1000}).json()["members"]
    assert len(listed) > 1

    view.refresh()
    client.close()
    session.close()
    assert remembered[1] == {changed}
    now = {m["email_address"]: (m["status"], m["last_changed"]) for m in sandbox.members()}
    assert view.members == now
    assert memory.members() == now
    assert view.members[changed][0] == "unsubscribed"
    audit.close()
