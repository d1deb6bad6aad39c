"""Re-sending failed writes from the audit trail, without undoing anything newer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from target_mailchimp.audit import FAILED, OK, SKIPPED
from target_mailchimp.client import ApiError, MailchimpError
from target_mailchimp.members import ARCHIVED_REASON, archived_emails
from target_mailchimp.run_context import RunContext
from target_mailchimp.values import iso, to_datetime


@dataclass(frozen=True)
class Attempt:
    outcome: str  # ok / failed / skipped
    message: str
    answer: Any = None
    # Mailchimp could not be used at all (retries exhausted, credentials): stop re-sending.
    outage: bool = False


def consent_safe(row: dict[str, Any], body: Any) -> Any:
    """A member write never sends a subscribing `status` (rows written by older versions may
    carry one): it becomes `status_if_new`, which Mailchimp applies to new members only."""
    if row["stream"] != "members" or not isinstance(body, dict):
        return body
    status = body.get("status")
    if status is None or status == "unsubscribed":
        return body
    safe = {k: v for k, v in body.items() if k != "status"}
    safe.setdefault("status_if_new", status)
    return safe


class Replayer:
    """Re-sends failed writes (all idempotent), unless that would undo something newer:
    a later write for the same key, an archived contact, an edit made in Mailchimp since."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self._archived: set[str] | None = None

    def replay(self, row: dict[str, Any]) -> tuple[str, str]:
        """(outcome, message) for one failed write; the outcome is noted on its row."""
        attempt = self.attempt(row)
        self.record(row, attempt)
        return attempt.outcome, attempt.message

    def attempt(self, row: dict[str, Any]) -> Attempt:
        """Send one failed write again. Thread-safe: it only reads the audit trail."""
        body = json.loads(row["payload"]) if row["payload"] else None
        try:
            reason = self._skip_reason(row, body)
            if reason:
                return Attempt(SKIPPED, reason)
            answer = self.context.client.request(row["method"], row["path"],
                                                 body=consent_safe(row, body))
        except ApiError as exc:
            if exc.status == 404 and (row["method"] == "DELETE" or row["stream"] == "deletions"):
                return Attempt(OK, "already gone")  # the deletion's goal is reached
            return Attempt(FAILED, exc.summary())
        except MailchimpError as exc:
            return Attempt(FAILED, str(exc), outage=True)
        return Attempt(OK, "replayed", answer)

    def record(self, row: dict[str, Any], attempt: Attempt) -> None:
        self.context.audit.mark_replayed(row["id"], attempt.outcome, attempt.message)
        if (attempt.outcome == OK and row["stream"] == "members"
                and isinstance(attempt.answer, dict)):
            # Our own write: its last_changed must not later look like an edit in Mailchimp.
            self.context.audit.remember_member_changes(
                self.context.list_id, {row["record_key"]: attempt.answer.get("last_changed")})

    def _skip_reason(self, row: dict[str, Any], body: Any) -> str | None:
        if self.context.audit.superseded(row):
            # A later run wrote (or deliberately skipped) this key: the old payload is stale.
            return "superseded by a later write for this key"
        if row["stream"] == "members":
            return self._member_conflict(row)
        email = body.get("email_address") if isinstance(body, dict) else None
        if row["stream"] == "customers" and email and (
                str(email).lower() in self._archived_emails()):
            # A customer upsert would re-add the archived contact.
            return ARCHIVED_REASON
        return None

    def _member_conflict(self, row: dict[str, Any]) -> str | None:
        """The rules of a normal run: no restoring archived contacts, and a change made in
        Mailchimp after this write was first tried (so after its source update) is kept."""
        try:
            remote = self.context.client.request(
                "GET", row["path"], params={"fields": "status,last_changed"}) or {}
        except ApiError as exc:
            if exc.status == 404:
                return None  # not in the audience: the PUT creates it, as first intended
            raise
        if remote.get("status") == "archived":
            return ARCHIVED_REASON
        changed = to_datetime(remote.get("last_changed"))
        failed_at = to_datetime(row["at"])
        if changed is None or failed_at is None or changed <= failed_at:
            return None
        email = str(row["record_key"])
        mine = self.context.audit.own_member_changes(self.context.list_id, [email]).get(email)
        if mine and mine.last_changed == remote.get("last_changed"):
            return None  # that change is one of our own writes (e.g. tagging)
        return f"changed in Mailchimp at {iso(changed)}, after this write failed; kept"

    def _archived_emails(self) -> set[str]:
        if self._archived is None:  # one read, only if a customer write is replayed
            self._archived = archived_emails(self.context.client, self.context.list_id)
        return self._archived
