"""Reconcile mode (`reconcile: true`): month-end hygiene against the full desired state.

The input is a full read (the `reconcile` job's tap has no `state` capability, so Meltano never
gives it a bookmark; its mapper has its own store, so it re-sends everything). Instead of
writing record by record, the sinks hand every record to a `Reconciler`, which at the end of
input reads the audience and the store in bulk (1,000 a page) and writes only the drift:

- a member whose merge fields (or `opt_out`) differ from the record is put back when the
  record's `source_updated_at` is newer than the member's `last_changed` (or that change was our
  own write), else left alone: the sync's newest-wins rule;
- member tags the record wants and Mailchimp lacks (or has but should not), same rule;
- an order whose `financial_status` differs is corrected;
- a member this target created or updated (`member_writes`) that no record holds any more is
  archived, but never more than `reconcile_max_archive_share` of them in one run (an input
  that is not a full read must not empty the audience);
- never: a member the target never wrote, a subscribing status, an archived member restored.

`dry_run: true` reads and logs the plan, writes nothing (not even the audit trail). Every write
goes through the normal writers (consent rules, audit rows) plus one `reconcile` audit row per
repair saying why. The last log line gives the cost in calls.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from target_mailchimp.audit import OK, SKIPPED, AuditEntry, member_writes
from target_mailchimp.client import ApiError, subscriber_hash
from target_mailchimp.deletions import write_deletions
from target_mailchimp.ecommerce import write_store_objects
from target_mailchimp.members import MemberWriter, archived_emails, newest_per_email, parse_member
from target_mailchimp.merge_fields import fit_to_type
from target_mailchimp.operations import Write
from target_mailchimp.run_context import RunContext
from target_mailchimp.tags import SegmentDirectory, write_member_tags
from target_mailchimp.values import iso, mailchimp_email, normalise_email, to_datetime

LOGGER = logging.getLogger("target_mailchimp.reconcile")
STREAM = "reconcile"
MEMBER_FIELDS = ("members.email_address,members.status,members.merge_fields,members.tags,"
                 "members.last_changed,total_items")
ORDER_FIELDS = "orders.id,orders.financial_status,total_items"
NOT_SUBSCRIBING = "transactional"  # a member reconcile creates never receives marketing
DEFAULT_MAX_ARCHIVE_SHARE = 0.2
INCOMPLETE_READ = "incomplete_read"  # top-level STATE key of a read that stopped early


@dataclass
class Repair:
    kind: str  # member, member_tags, order, archive
    key: str
    why: str
    record: dict[str, Any] | None = None


@dataclass
class Plan:
    repairs: list[Repair] = field(default_factory=list)
    kept: list[Repair] = field(default_factory=list)  # drift where Mailchimp is newer
    refused_archives: int = 0
    refusal: str | None = None

    def counts(self) -> Counter[str]:
        return Counter(r.kind for r in self.repairs)


def _same(desired: Any, remote: Any) -> bool:
    """A merge value as Mailchimp holds it: ADDRESS parts compared one by one, '' == None."""
    if isinstance(desired, dict):
        remote = remote if isinstance(remote, dict) else {}
        return all(_same(value, remote.get(part)) for part, value in desired.items())
    return str(desired if desired is not None else "").strip() == str(
        remote if remote is not None else "").strip()


class Reconciler:
    def __init__(self, context: RunContext, segments: SegmentDirectory, *, dry_run: bool,
                 max_archive_share: float = DEFAULT_MAX_ARCHIVE_SHARE) -> None:
        self.context = context
        self.segments = segments
        self.dry_run = dry_run
        self.max_archive_share = max_archive_share
        self.desired: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.calls: Counter[str] = Counter()

    def collect(self, stream: str, records: list[dict[str, Any]]) -> None:
        self.desired[stream].extend(records)

    # --- the run -------------------------------------------------------------------------

    def run(self, last_state: dict[str, Any] | None = None) -> Plan:
        """`last_state`: the input's last STATE; `incomplete_read` there (tap-exactonline's
        `mark_incomplete_read`: its read stopped early) means no archive at all."""
        self._count_calls()
        plan = Plan()
        members = self.desired.get("members", [])
        if not members:
            # An empty input is never a full read of a company with customers.
            plan.refusal = "no members in the input, so it is no full read; nothing was done"
            return plan
        remote = {mailchimp_email(m): m for m in self.context.client.paginate(
            f"lists/{self.context.list_id}/members", "members", {"fields": MEMBER_FIELDS})}
        archived = archived_emails(self.context.client, self.context.list_id)
        for email in archived:
            remote.pop(email, None)
        own = self._owned()
        self._plan_members(plan, remote, archived, own)
        self._plan_member_tags(plan, remote, own)
        self._plan_archives(plan, remote, own, bool((last_state or {}).get(INCOMPLETE_READ)))
        self._plan_orders(plan)
        for repair in plan.repairs:
            LOGGER.info("reconcile%s: %s %s: %s", " (dry run)" if self.dry_run else "",
                        repair.kind, repair.key, repair.why)
        for kept in plan.kept:
            LOGGER.info("reconcile: kept %s %s: %s", kept.kind, kept.key, kept.why)
        if not self.dry_run:
            self._apply(plan)
        return plan

    def _count_calls(self) -> None:
        """Count every logical request (retries not counted) for the cost line."""
        client = self.context.client
        send: Callable[..., Any] = client.request

        def counted(method: str, path: str, **kwargs: Any) -> Any:
            self.calls["reads" if method.upper() == "GET" else "writes"] += 1
            return send(method, path, **kwargs)

        client.request = counted  # type: ignore[method-assign]

    def _owned(self) -> dict[str, str | None]:
        """email -> last_changed of our own last write, for every member this target wrote."""
        audit = self.context.audit
        query = sa.select(member_writes.c.email, member_writes.c.last_changed).where(
            member_writes.c.list_id == self.context.list_id)
        with audit.engine.connect() as conn:
            return {row.email: row.last_changed for row in conn.execute(query)}

    @staticmethod
    def _exact_newer(updated_at: datetime.datetime | None, member: dict[str, Any],
                     own: dict[str, str | None]) -> bool:
        """Newest wins, as in the sync: Mailchimp's change stands when it is newer than
        Exact's record, unless that change was our own write."""
        remote_changed = to_datetime(member.get("last_changed"))
        if updated_at is None or remote_changed is None or remote_changed <= updated_at:
            return True
        return own.get(mailchimp_email(member)) == member.get("last_changed")

    # --- members -------------------------------------------------------------------------

    def _plan_members(self, plan: Plan, remote: dict[str, dict[str, Any]], archived: set[str],
                      own: dict[str, str | None]) -> None:
        records_by_email: dict[str, dict[str, Any]] = {}
        changes = []
        for record in self.desired["members"]:
            change, _ = parse_member(record, self.context)
            if change is not None:
                changes.append(change)
                records_by_email[change.email] = record
        winners, _ = newest_per_email(changes)
        types = self.context.merge_fields.known()
        for email, change in winners.items():
            if email in archived:
                continue  # never restored
            member = remote.get(email)
            # Never a subscribing status, not even as status_if_new of an existing member (it
            # would apply if the member vanished between this read and the write).
            record = {**records_by_email[email], "status_if_new": "unsubscribed"
                      if change.opt_out or change.status_if_new == "unsubscribed"
                      else NOT_SUBSCRIBING}
            if member is None:
                plan.repairs.append(Repair("member", email, "missing from the audience: "
                                           f"created {record['status_if_new']}", record))
                continue
            drift = []
            for tag, value in change.merge_fields.items():
                fitted, problem = fit_to_type(tag, value, types.get(tag, "text"))
                # Compared as Mailchimp stores the value we send. If Mailchimp reformats a
                # value (unconfirmed, e.g. phone numbers), that member is rewritten each
                # reconcile: harmless, and visible in the log.
                if problem is None and not _same(fitted, (member.get("merge_fields") or {})
                                                 .get(tag)):
                    drift.append(tag)
            opt_out = change.opt_out and member.get("status") not in ("unsubscribed", "cleaned")
            if opt_out:
                drift.append("status (excluded or inactive in Exact: unsubscribe)")
            if not drift:
                continue
            what = ", ".join(drift)
            if self._exact_newer(change.updated_at, member, own):
                plan.repairs.append(Repair(
                    "member", email, f"{what} differed; Exact's record "
                    f"({iso(change.updated_at)}) is newer: put back", record))
            elif opt_out:
                # Consent first: an exclusion in Exact is honoured whatever was edited in
                # Mailchimp since; only the status is sent, the edited fields stay.
                plan.repairs.append(Repair(
                    "unsubscribe", email, "excluded or inactive in Exact, subscribed in "
                    "Mailchimp: unsubscribed (fields changed in Mailchimp later kept)"))
            else:
                plan.kept.append(Repair(
                    "member", email, f"{what} differ; changed in Mailchimp at "
                    f"{member.get('last_changed')}, after Exact's record "
                    f"({iso(change.updated_at)}): Mailchimp's kept"))

    def _plan_member_tags(self, plan: Plan, remote: dict[str, dict[str, Any]],
                          own: dict[str, str | None]) -> None:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for record in self.desired.get("member_tags", []):
            email = normalise_email(record.get("email"))
            if email and record.get("tag_key") and record.get("tag_name"):
                latest[(email, str(record["tag_key"]))] = record
        for (email, tag_key), record in latest.items():
            member = remote.get(email)
            if member is None:
                continue  # archived, or created by this run's member repairs: tagged next sync
            has = record["tag_name"] in {t.get("name") for t in member.get("tags") or []}
            wants = record.get("active", True) is not False
            if has == wants:
                continue
            what = f"tag {record['tag_name']!r} {'missing' if wants else 'present'}"
            updated_at = to_datetime(record.get("source_updated_at"))
            if self._exact_newer(updated_at, member, own):
                plan.repairs.append(Repair("member_tags", f"{email}/{tag_key}",
                                           f"{what}; Exact is newer: put back", record))
            else:
                plan.kept.append(Repair("member_tags", f"{email}/{tag_key}",
                                        f"{what}; changed in Mailchimp after Exact: kept"))

    def _plan_archives(self, plan: Plan, remote: dict[str, dict[str, Any]],
                       own: dict[str, str | None], incomplete: bool) -> None:
        held = {normalise_email(r.get("email")) for r in self.desired["members"]}
        held |= {normalise_email(r.get("email")) for r in self.desired.get("customers", [])}
        strays = sorted(email for email in own if email in remote and email not in held)
        owned_present = sum(1 for email in own if email in remote)
        if strays and incomplete:
            plan.refused_archives = len(strays)
            plan.refusal = (f"the source says its read stopped early ({INCOMPLETE_READ} in its "
                            f"last STATE), so none of the {len(strays)} members in no record "
                            "was archived (run the reconcile again on a fresh daily budget)")
            return
        if strays and len(strays) > self.max_archive_share * max(owned_present, 1):
            # Everything else is still repaired; the target exits non-zero so a person looks.
            plan.refused_archives = len(strays)
            plan.refusal = (
                f"{len(strays)} of the {owned_present} members this target wrote are in no "
                f"record: more than reconcile_max_archive_share "
                f"({self.max_archive_share:g}); the input is probably not a full read, so "
                "none was archived (run the `reconcile` job, whose tap reads everything)")
            return
        for email in strays:
            plan.repairs.append(Repair("archive", email, "written by this target, no Exact "
                                       "record holds the address any more: archived"))

    # --- orders --------------------------------------------------------------------------

    def _plan_orders(self, plan: Plan) -> None:
        desired = {str(r["id"]): r for r in self.desired.get("orders", []) if r.get("id")}
        store_id = self.context.config.get("store_id")
        if not desired or not store_id:
            return
        try:
            remote = {str(o["id"]): o for o in self.context.client.paginate(
                f"ecommerce/stores/{store_id}/orders", "orders", {"fields": ORDER_FIELDS})}
        except ApiError as exc:
            if exc.status == 404:
                return  # no store yet: the sync creates it with every order
            raise
        for order_id, record in desired.items():
            order = remote.get(order_id)
            status = record.get("financial_status")
            if order is not None and status and order.get("financial_status") != status:
                plan.repairs.append(Repair(
                    "order", order_id, f"financial_status {order.get('financial_status')!r} "
                    f"in Mailchimp, {status!r} in Exact: corrected", record))

    # --- writing -------------------------------------------------------------------------

    def _apply(self, plan: Plan) -> None:
        by_kind: dict[str, list[Repair]] = defaultdict(list)
        for repair in plan.repairs:
            by_kind[repair.kind].append(repair)
        if by_kind["member"]:
            MemberWriter(self.context).write([r.record for r in by_kind["member"] if r.record])
        if by_kind["unsubscribe"]:
            self._unsubscribe([r.key for r in by_kind["unsubscribe"]])
        if by_kind["member_tags"]:
            write_member_tags(self.context, self.segments,
                              [r.record for r in by_kind["member_tags"] if r.record])
        if by_kind["order"]:
            write_store_objects(self.context, "orders",
                                [r.record for r in by_kind["order"] if r.record])
        if by_kind["archive"]:
            write_deletions(self.context, [{"entity": "member", "key": r.key,
                                            "action": "archive"} for r in by_kind["archive"]])
        self.context.audit.record(
            [AuditEntry(STREAM, r.key, r.kind, OK, reason=r.why) for r in plan.repairs]
            + [AuditEntry(STREAM, r.key, r.kind, SKIPPED, reason=r.why) for r in plan.kept])

    def _unsubscribe(self, emails: list[str]) -> None:
        """PATCH status only. Its `last_changed` is NOT remembered as our own write: the
        member still holds fields edited in Mailchimp, which must keep winning over older
        Exact records (remembered, the next run would take them for ours and overwrite)."""
        list_id = self.context.list_id
        writes = [Write("members", email, "unsubscribe", "PATCH",
                        f"lists/{list_id}/members/{subscriber_hash(email)}",
                        {"status": "unsubscribed"}) for email in emails]
        results = self.context.executor.execute(writes)
        self.context.audit.record([r.audit_entry() for r in results])

    def summary(self, plan: Plan) -> str:
        counts = plan.counts()
        done = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "nothing"
        verb = "would repair" if self.dry_run else "repaired"
        return (f"Reconcile{' (dry run)' if self.dry_run else ''}: {verb} {done}; kept "
                f"{len(plan.kept)} newer in Mailchimp; desired members "
                f"{len(self.desired.get('members', []))}, orders "
                f"{len(self.desired.get('orders', []))}; cost {sum(self.calls.values())} "
                f"Mailchimp calls ({self.calls['reads']} reads, {self.calls['writes']} writes)")
