"""Members: dedup, conflict check against Mailchimp, bulk create, consent-safe update.

Consent rules this module keeps:
- `status` is only sent to create a member (batch subscribe with update_existing false, which
  leaves existing members untouched), or as `unsubscribed` for an opt-out.
- Existing members are updated with PUT + `status_if_new`, which never changes their status.
- Archived members are not restored (batch subscribe and PUT would bring them back).

Unconfirmed API behaviour, and the choices made so the target does not depend on it:
- Whether batch subscribe honours `status_if_new`: not relied on. Creation uses `status` with
  `update_existing: false`, so an existing member is never touched by it (it comes back as
  ERROR_CONTACT_EXISTS and is then updated by PUT + `status_if_new`).
- Whether list reads include archived members: we ask for `status=archived` explicitly.
- Whether `last_changed` moves on a no-op update: we remember the value Mailchimp returns for
  our own writes and ignore exactly that value, whatever it is.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from target_mailchimp.audit import FAILED, OK, SKIPPED, AuditEntry, OwnWrite
from target_mailchimp.client import MailchimpClient, subscriber_hash
from target_mailchimp.merge_fields import clean_address, clean_text_value, fit_all
from target_mailchimp.operations import BULK_BATCH_FROM, Write, WriteResult, short_answer
from target_mailchimp.own_writes import confirm_side_effects, now, settle_dead_runs
from target_mailchimp.run_context import RunContext
from target_mailchimp.values import (
    clean_text,
    drop_none,
    email_problem,
    iso,
    mailchimp_email,
    normalise_email,
    to_datetime,
)

STREAM = "members"
STATUSES_IF_NEW = {"subscribed", "pending", "unsubscribed", "transactional"}
CONTACT_EXISTS = "ERROR_CONTACT_EXISTS"
ARCHIVED_REASON = "archived in Mailchimp; the target does not restore archived contacts"
BATCH_ANSWER = {"new_members": list, "updated_members": list, "errors": list}
# What is read of a batch subscribe's answer (answer_fields.py): the members' keys the audit
# trail and the own-writes record use, and the errors whole; not whole members (issue 9).
_MEMBER_KEYS = ("id", "email_address", "status", "last_changed")
BATCH_FIELDS = ",".join([*(f"{group}.{key}" for group in ("new_members", "updated_members")
                           for key in _MEMBER_KEYS),
                         "errors", "total_created", "total_updated", "error_count"])
PUT_FIELDS = ",".join(_MEMBER_KEYS)  # a member PUT's answer: the same keys


@dataclass
class MemberChange:
    email: str
    updated_at: datetime.datetime | None
    status_if_new: str
    opt_out: bool
    merge_fields: dict[str, Any]
    extras: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def path_suffix(self) -> str:
        return f"members/{subscriber_hash(self.email)}"

    def put_body(self) -> dict[str, Any]:
        """Upsert body for an existing member: never a subscribing status."""
        body = {"email_address": self.email, "status_if_new": self.new_status,
                **self._fields()}
        if self.opt_out:
            body["status"] = "unsubscribed"  # toward unsubscribed is always safe
        return body

    def create_body(self) -> dict[str, Any]:
        """Batch-subscribe entry; only ever creates (update_existing is false)."""
        return {"email_address": self.email, "status": self.new_status, **self._fields()}

    @property
    def new_status(self) -> str:
        return "unsubscribed" if self.opt_out else self.status_if_new

    def _fields(self) -> dict[str, Any]:
        return drop_none({"merge_fields": self.merge_fields or None, **self.extras})

    @property
    def note(self) -> str | None:
        return "; ".join(self.notes) or None


def parse_member(
    record: dict[str, Any], context: RunContext
) -> tuple[MemberChange | None, AuditEntry | None]:
    email = normalise_email(record.get("email"))
    key = str(record.get("email") or record.get("source_key") or "?")
    if email is None:
        return None, AuditEntry(STREAM, key, "upsert", FAILED,
                                reason=email_problem(record.get("email")), payload=record)
    status = record.get("status_if_new") or context.config.get(
        "default_status_if_new", "transactional"
    )
    if status not in STATUSES_IF_NEW:
        return None, AuditEntry(STREAM, email, "upsert", FAILED, payload=record,
                                reason=f"status_if_new {status!r} is not one of "
                                       f"{sorted(STATUSES_IF_NEW)}")
    notes: list[str] = []
    merge_fields: dict[str, Any] = {}
    raw_fields = dict(record.get("merge_fields") or {})
    for prop, spec in context.merge_field_map.items():
        if record.get(prop) is not None:
            raw_fields[spec.tag] = record[prop]
    for tag, value in raw_fields.items():
        tag = str(tag).upper()
        if value is None:
            continue
        if isinstance(value, dict):
            address, problem = clean_address(value, tag)
            if problem:
                notes.append(problem)
            else:
                merge_fields[tag] = address
            continue
        text, note = clean_text_value(tag, value)
        if note:
            notes.append(note)
        merge_fields[tag] = text
    language = clean_text(str(record["language"])) if record.get("language") else None
    extras = drop_none({"language": language,
                        "vip": bool(record["vip"]) if record.get("vip") is not None else None})
    change = MemberChange(email, to_datetime(record.get("source_updated_at")), status,
                          bool(record.get("opt_out")), merge_fields, extras, notes)
    return change, None


def newest_per_email(
    changes: Iterable[MemberChange],
) -> tuple[dict[str, MemberChange], list[MemberChange]]:
    """Newest `source_updated_at` wins; on a tie (or no timestamps) the later record wins."""
    winners: dict[str, MemberChange] = {}
    superseded: list[MemberChange] = []
    floor = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    for change in changes:
        current = winners.get(change.email)
        if current is None or (change.updated_at or floor) >= (current.updated_at or floor):
            if current is not None:
                superseded.append(current)
            winners[change.email] = change
        else:
            superseded.append(change)
    return winners, superseded


def archived_emails(client: MailchimpClient, list_id: str) -> set[str]:
    """Archived contacts: any write naming them (PUT, batch subscribe, a customer) would
    bring them back, so every write path checks this first."""
    return {
        mailchimp_email(m)
        for m in client.paginate(
            f"lists/{list_id}/members", "members",
            {"status": "archived", "fields": "members.email_address,total_items"},
        )
    }


class MemberWriter:
    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.client = context.client
        self.audit = context.audit

    def write(self, records: list[dict[str, Any]]) -> dict[str, int]:
        list_id = self.context.list_id
        entries: list[AuditEntry] = []
        parsed = []
        for record in records:
            change, failure = parse_member(record, self.context)
            if failure:
                entries.append(failure)
            else:
                parsed.append(change)
        winners, superseded = newest_per_email(parsed)
        entries += [AuditEntry(STREAM, c.email, "upsert", SKIPPED,
                               reason="superseded by a newer record for this email in the batch")
                    for c in superseded]
        if not winners:
            self.audit.record(entries)
            return _tally(entries)
        self._ensure_merge_fields(winners.values())

        remote, archived = self._mailchimp_state(winners.values())
        settle_dead_runs(self.context)
        confirm_side_effects(self.context)  # from the read just made: no call
        own = self.audit.own_member_changes(list_id, winners)
        to_create: list[MemberChange] = []
        to_update: list[MemberChange] = []
        for change in winners.values():
            skip_reason = self._skip_reason(change, remote.get(change.email), own, archived)
            if skip_reason:
                entries.append(AuditEntry(STREAM, change.email, "upsert", SKIPPED,
                                          reason=skip_reason))
            elif change.email in remote or change.email in own:
                to_update.append(change)
            else:
                to_create.append(change)

        last_changed: dict[str, str | None] = {}
        attempted = [c.email for c in to_create + to_update]
        self.audit.mark_members_pending(list_id, attempted, iso(now()) or "")
        exists_after_all, created_entries = self._create(list_id, to_create, last_changed)
        entries += created_entries
        to_update += exists_after_all
        entries += self._update(list_id, to_update, last_changed)

        self.audit.record(entries)
        self.audit.settle_members(list_id, attempted, last_changed)
        return _tally(entries)

    # --- steps ---------------------------------------------------------------------------

    def _ensure_merge_fields(self, changes: Iterable[MemberChange]) -> None:
        changes = list(changes)
        tags: set[str] = set()
        types: dict[str, str] = {}
        for change in changes:
            for tag, value in change.merge_fields.items():
                tags.add(tag)
                if isinstance(value, dict):
                    types[tag] = "address"
        if not tags:
            return
        unusable = self.context.merge_fields.ensure(tags, types)
        known = self.context.merge_fields.known()
        for change in changes:
            if unusable:
                for tag in set(change.merge_fields) & set(unusable):
                    del change.merge_fields[tag]
                    change.notes.append(f"{tag} left out: {unusable[tag]}")
            fit_all(change.merge_fields, known, change.notes)

    def _mailchimp_state(
        self, changes: Iterable[MemberChange]
    ) -> tuple[dict[str, tuple[str | None, str | None]], set[str]]:
        """Members as Mailchimp shows them (status, last_changed), every change since the
        oldest source timestamp included, and the archived ones.

        The run's view of the audience reads only what changed since its last read (about
        one call per 1,000 changes), never the whole audience again for each drain.
        """
        changes = list(changes)
        stamps = [c.updated_at for c in changes if c.updated_at is not None]
        view = self.context.audience
        remote = view.changed_since(min(stamps)) if stamps else view.members
        archived = view.archived()
        archived |= {c.email for c in changes if remote.get(c.email, (None,))[0] == "archived"}
        return remote, archived

    @staticmethod
    def _skip_reason(
        change: MemberChange, remote: tuple[str | None, str | None] | None,
        own: dict[str, OwnWrite], archived: set[str],
    ) -> str | None:
        if change.email in archived:
            return ARCHIVED_REASON
        if change.updated_at is None or remote is None:
            return None
        remote_changed = to_datetime(remote[1])
        if remote_changed is None or remote_changed <= change.updated_at:
            return None
        mine = own.get(change.email)
        if mine and mine.last_changed == remote[1]:
            # Our own previous write (writes of runs that died were read back at the start).
            return None
        return (f"changed in Mailchimp at {iso(remote_changed)}, after the source update at "
                f"{iso(change.updated_at)}; Mailchimp's version kept")

    def _create(
        self, list_id: str, changes: list[MemberChange], last_changed: dict[str, str | None]
    ) -> tuple[list[MemberChange], list[AuditEntry]]:
        """Batch subscribe in chunks; existing members come back for the update path."""
        size = self.context.batch_size
        chunks = [changes[i : i + size] for i in range(0, len(changes), size)]
        params = {"skip_merge_validation": "true"} if self.context.config.get(
            "skip_merge_validation") else None

        # Many chunks go as one /batches job (issue 9: one job rather than a call per 500
        # members), a few directly. A garbled answer is sent again: members it created come
        # back as existing (update_existing is false) and go the consent-safe update path.
        writes = [Write(STREAM, f"batch subscribe of {len(chunk)}", "create", "POST",
                        f"lists/{list_id}", {"members": [c.create_body() for c in chunk],
                                             "update_existing": False},
                        params=params, expect=BATCH_ANSWER, fields=BATCH_FIELDS)
                  for chunk in chunks]
        results = self.context.executor.execute(writes, batch_from=BULK_BATCH_FROM)

        existing: list[MemberChange] = []
        entries: list[AuditEntry] = []
        for chunk, result in zip(chunks, results, strict=True):
            by_email = {c.email: c for c in chunk}
            if not result.ok:
                entries += [self._failed(c, list_id, result.error or "rejected") for c in chunk]
                continue
            answer = result.response
            for member in [*answer["new_members"], *answer["updated_members"]]:
                change = by_email.pop(mailchimp_email(member), None)
                if change:
                    last_changed[change.email] = member.get("last_changed")
                    entries.append(AuditEntry(STREAM, change.email, "create", OK,
                                              reason=change.note,
                                              response=short_answer(200, member)))
            for error in answer["errors"]:
                change = by_email.pop(mailchimp_email(error), None)
                if change is None:
                    continue
                if error.get("error_code") == CONTACT_EXISTS:
                    existing.append(change)
                    continue
                reason = str(error.get("error") or "rejected")
                if error.get("field"):
                    reason += f" [{error['field']}: {error.get('field_message', '')}]"
                entries.append(self._failed(change, list_id, reason))
            entries += [self._failed(c, list_id, "missing from Mailchimp's batch answer")
                        for c in by_email.values()]
        return existing, entries

    def _update(
        self, list_id: str, changes: list[MemberChange], last_changed: dict[str, str | None]
    ) -> list[AuditEntry]:
        params = {"skip_merge_validation": "true"} if self.context.config.get(
            "skip_merge_validation") else None
        # "opt_out" names the writes that unsubscribe: tap-mailchimp reads it in this audit
        # trail so the way back does not send our own opt-outs to Exact (no loop).
        writes = [Write(STREAM, c.email, "opt_out" if c.opt_out else "update", "PUT",
                        f"lists/{list_id}/{c.path_suffix}", c.put_body(), params=params,
                        note=c.note, fields=PUT_FIELDS) for c in changes]
        results: list[WriteResult] = self.context.executor.execute(writes)
        for result in results:
            if result.ok and isinstance(result.response, dict):
                last_changed[result.write.record_key] = result.response.get("last_changed")
        return [r.audit_entry() for r in results]

    @staticmethod
    def _failed(change: MemberChange, list_id: str, reason: str) -> AuditEntry:
        # Stored as the equivalent PUT so `replay` can re-send it on its own, consent-safely.
        return AuditEntry(STREAM, change.email, "upsert", FAILED, reason=reason,
                          response=reason, method="PUT",
                          path=f"lists/{list_id}/{change.path_suffix}",
                          payload=change.put_body())


def _tally(entries: list[AuditEntry]) -> dict[str, int]:
    counts = {OK: 0, FAILED: 0, SKIPPED: 0}
    for entry in entries:
        counts[entry.outcome] = counts.get(entry.outcome, 0) + 1
    return counts
