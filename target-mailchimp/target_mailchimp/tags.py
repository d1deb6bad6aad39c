"""Tags are static segments: define/rename/delete them, and add/remove members in bulk."""

from __future__ import annotations

import datetime
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from target_mailchimp.audit import FAILED, OK, SKIPPED, AuditEntry
from target_mailchimp.client import ApiError, subscriber_hash
from target_mailchimp.members import ARCHIVED_REASON
from target_mailchimp.operations import BULK_BATCH_FROM, Write
from target_mailchimp.own_writes import member_side_effects, now, side_effect_on_everyone
from target_mailchimp.run_context import RunContext
from target_mailchimp.values import clean_text, normalise_email, to_datetime

SEGMENT_LIMIT = 500  # members_to_add / members_to_remove per call
# What is read of a segment update's answer (answer_fields.py): the errors, not the whole
# members added and removed (issue 9: memory).
SEGMENT_FIELDS = "errors,total_added,total_removed,error_count"


class SegmentDirectory:
    """tag_key -> segment id: the audit DB first, then Mailchimp's static segments by name."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.client = context.client
        self._by_name: dict[str, int] | None = None
        self._lock = threading.RLock()

    def _segments_by_name(self) -> dict[str, int]:
        if self._by_name is None:
            self._by_name = {
                s["name"]: int(s["id"])
                for s in self.client.paginate(
                    f"lists/{self.context.list_id}/segments", "segments",
                    {"type": "static", "fields": "segments.id,segments.name,total_items"},
                )
            }
        return self._by_name

    def find(self, tag_key: str, name: str | None) -> tuple[int, str] | None:
        with self._lock:
            known = self.context.audit.segment_for_tag(self.context.list_id, tag_key)
            if known:
                return known
            if name and name in self._segments_by_name():
                segment_id = self._segments_by_name()[name]
                self.context.audit.remember_segment(self.context.list_id, tag_key, segment_id,
                                                    name)
                return segment_id, name
            return None

    def find_or_create(self, tag_key: str, name: str) -> int:
        with self._lock:
            found = self.find(tag_key, name)
            if found:
                return found[0]
            segment_id = self._create(name)
            self._segments_by_name()[name] = segment_id
            self.context.audit.remember_segment(self.context.list_id, tag_key, segment_id, name)
            return segment_id

    def _create(self, name: str) -> int:
        try:
            created = self.client.request(
                "POST", f"lists/{self.context.list_id}/segments",
                body={"name": name, "static_segment": []}, expect={"id": (int, str)},
            )
        except ApiError:
            # A retry after a garbled answer finds the segment that call created ("already
            # exists"): read the names again before calling it a failure.
            self._by_name = None
            if name in self._segments_by_name():
                return self._segments_by_name()[name]
            raise
        return int(created["id"])

    def sharers(self, tag_key: str, segment_id: int) -> list[str]:
        """Other tag_keys on the same Mailchimp tag (source tags that share one name)."""
        keys = self.context.audit.tag_keys_of_segment(self.context.list_id, segment_id)
        return [key for key in keys if key != tag_key]

    def detach(self, tag_key: str) -> None:
        self.context.audit.forget_segment(self.context.list_id, tag_key)

    def rename(self, tag_key: str, segment_id: int, old: str, new: str) -> None:
        with self._lock:
            self.client.request("PATCH", f"lists/{self.context.list_id}/segments/{segment_id}",
                                body={"name": new})
            by_name = self._segments_by_name()
            by_name.pop(old, None)
            by_name[new] = segment_id
            self.context.audit.remember_segment(self.context.list_id, tag_key, segment_id, new)

    def delete(self, tag_key: str, segment_id: int, name: str) -> None:
        with self._lock:
            try:
                self.client.request(
                    "DELETE", f"lists/{self.context.list_id}/segments/{segment_id}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
            self._segments_by_name().pop(name, None)
            self.context.audit.forget_segment(self.context.list_id, tag_key)


def _tag_name(value: Any) -> str | None:
    """The name as Mailchimp should show it: no control characters, no stray spaces."""
    return clean_text(str(value)).strip() or None if value is not None else None


def write_tags(context: RunContext, directory: SegmentDirectory,
               records: list[dict[str, Any]]) -> None:
    """The `tags` stream: one definition per tag_key (the last one in the batch wins)."""
    latest = {str(r.get("tag_key")): r for r in records if r.get("tag_key") is not None}
    entries = [AuditEntry("tags", "?", "define", FAILED, reason="missing tag_key", payload=r)
               for r in records if r.get("tag_key") is None]
    started = now()
    for tag_key, record in latest.items():
        name, active = _tag_name(record.get("name")), record.get("active", True) is not False
        try:
            found = directory.find(tag_key, name)
            sharers = directory.sharers(tag_key, found[0]) if found else []
            if found and sharers and (not active or found[1] != name):
                # Renaming or deleting a tag other source tags still use would change them too.
                directory.detach(tag_key)
                entries.append(AuditEntry(
                    "tags", tag_key, "delete" if not active else "rename", SKIPPED,
                    reason=f"tag {found[1]!r} is also used by {', '.join(sharers)}; left as is",
                ))
                if active:
                    segment_id = directory.find_or_create(tag_key, name)
                    entries.append(AuditEntry("tags", tag_key, "define", OK,
                                              response=f"segment {segment_id}"))
            elif not active:
                if found:
                    directory.delete(tag_key, *found)
                    entries.append(AuditEntry("tags", tag_key, "delete", OK,
                                              response=f"segment {found[0]} deleted"))
                else:
                    entries.append(AuditEntry("tags", tag_key, "delete", SKIPPED,
                                              reason="no such tag in Mailchimp"))
            elif not name:
                entries.append(AuditEntry("tags", tag_key, "define", FAILED,
                                          reason="missing name", payload=record))
            elif found and found[1] != name:
                directory.rename(tag_key, found[0], found[1], name)
                entries.append(AuditEntry("tags", tag_key, "rename", OK,
                                          response=f"{found[1]!r} -> {name!r}"))
            else:
                segment_id = directory.find_or_create(tag_key, name)
                entries.append(AuditEntry("tags", tag_key, "define", OK,
                                          response=f"segment {segment_id}"))
        except ApiError as exc:
            entries.append(AuditEntry("tags", tag_key, "define", FAILED, reason=exc.summary(),
                                      payload=record))
    if any(e.outcome == OK and e.operation in ("rename", "delete") for e in entries):
        # Every member with the tag changed, and the answer does not say who they are.
        side_effect_on_everyone(context, started)
    context.audit.record(entries)


def write_member_tags(context: RunContext, directory: SegmentDirectory,
                      records: list[dict[str, Any]]) -> None:
    """Newest record per (email, tag) wins; then one bulk call per 500 adds/removes per tag."""
    entries: list[AuditEntry] = []
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    floor = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    for record in records:
        email = normalise_email(record.get("email"))
        tag_key = record.get("tag_key")
        if email is None or tag_key is None:
            entries.append(AuditEntry("member_tags", f"{record.get('email')}/{tag_key}", "tag",
                                      FAILED, reason="invalid email" if tag_key else
                                      "missing tag_key", payload=record))
            continue
        key = (email, str(tag_key))
        current = latest.get(key)
        if current is None or ((to_datetime(record.get("source_updated_at")) or floor)
                               >= (to_datetime(current.get("source_updated_at")) or floor)):
            latest[key] = record  # dates read only for a pair seen twice (issue 9)

    per_tag: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"add": [], "remove": []})
    names: dict[str, str] = {}
    cleaned: dict[Any, str | None] = {}  # each distinct tag name cleaned once, not per member
    for (email, tag_key), record in latest.items():
        per_tag[tag_key]["add" if record.get("active", True) is not False else "remove"].append(
            email)
        raw = record.get("tag_name")
        try:
            name = cleaned[raw]
        except KeyError:
            name = cleaned[raw] = _tag_name(raw)
        except TypeError:  # not hashable: no cache
            name = _tag_name(raw)
        if name:
            names[tag_key] = name

    touched = [email for wanted in per_tag.values() for emails in wanted.values()
               for email in emails]
    with member_side_effects(context, touched):
        entries += _update_segments(context, directory, per_tag, names)
    context.audit.record(entries)


def _update_segments(context: RunContext, directory: SegmentDirectory,
                     per_tag: dict[str, dict[str, list[str]]],
                     names: dict[str, str]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    list_id = context.list_id
    calls: list[SegmentCall] = []
    for tag_key, wanted in per_tag.items():
        try:
            if wanted["add"]:
                segment_id = directory.find_or_create(tag_key, names.get(tag_key, tag_key))
            else:
                found = directory.find(tag_key, names.get(tag_key))
                if not found:
                    entries += [AuditEntry("member_tags", f"{e}/{tag_key}", "untag", SKIPPED,
                                           reason="tag does not exist in Mailchimp")
                                for e in wanted["remove"]]
                    continue
                segment_id = found[0]
        except ApiError as exc:
            entries += [AuditEntry("member_tags", f"{e}/{tag_key}", op, FAILED,
                                   reason=exc.summary())
                        for op, emails in (("tag", wanted["add"]), ("untag", wanted["remove"]))
                        for e in emails]
            continue
        adds, removes = wanted["add"], wanted["remove"]
        for start in range(0, max(len(adds), len(removes)), SEGMENT_LIMIT):
            calls.append(SegmentCall(tag_key, names.get(tag_key, tag_key), segment_id,
                                     adds[start : start + SEGMENT_LIMIT],
                                     removes[start : start + SEGMENT_LIMIT]))
    # Every tag's bulk calls together: many go as one /batches job (issue 9: one job rather
    # than a call per 500 members per tag), a few directly.
    writes = [Write("member_tags", f"segment {c.segment_id}", "tag", "POST",
                    f"lists/{list_id}/segments/{c.segment_id}",
                    {"members_to_add": c.add, "members_to_remove": c.remove},
                    expect={"errors": list}, fields=SEGMENT_FIELDS) for c in calls]
    results = context.executor.execute(writes, batch_from=BULK_BATCH_FROM)
    archived: set[str] | None = None  # read once, only when Mailchimp refuses an address
    for call, result in zip(calls, results, strict=True):
        refused = not result.ok  # the whole call refused (a 4xx about the request)
        failures: dict[str, str] = {}
        if refused:
            failures = dict.fromkeys(call.add + call.remove, result.error or "rejected")
        else:
            for error in result.response["errors"]:
                for email in error.get("email_addresses") or []:
                    failures[str(email).lower()] = str(error.get("error") or "rejected")
        if failures and archived is None and not refused:
            # "do not belong to this list or are archived": not yet a member is worth a retry,
            # archived is for good (tagging would not restore the contact anyway).
            archived = context.audience.archived()
        entries += _segment_entries(list_id, call, failures, refused, archived or set())
    return entries


@dataclass
class SegmentCall:
    """One bulk update of a tag's segment: at most SEGMENT_LIMIT adds and removes."""

    tag_key: str
    tag_name: str
    segment_id: int
    add: list[str]
    remove: list[str]


def _segment_entries(list_id: str, call: SegmentCall, failures: dict[str, str], refused: bool,
                     archived: set[str]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for op, emails, active in (("tag", call.add, "active"), ("untag", call.remove, "inactive")):
        for email in emails:
            key = f"{email}/{call.tag_key}"
            if email in failures and email in archived:
                entries.append(AuditEntry("member_tags", key, op, SKIPPED,
                                          reason=ARCHIVED_REASON))
            elif email in failures and op == "untag" and not refused:
                # Not on the list (or archived): there is no tag to remove.
                entries.append(AuditEntry("member_tags", key, op, SKIPPED,
                                          reason=failures[email]))
            elif email in failures:
                # Replayable as the per-member tags call (idempotent).
                entries.append(AuditEntry(
                    "member_tags", key, op, FAILED, reason=failures[email],
                    method="POST",
                    path=f"lists/{list_id}/members/{subscriber_hash(email)}/tags",
                    payload={"tags": [{"name": call.tag_name, "status": active}],
                             "is_syncing": True}))
            else:
                entries.append(AuditEntry("member_tags", key, op, OK,
                                          response=f"segment {call.segment_id}"))
    return entries
