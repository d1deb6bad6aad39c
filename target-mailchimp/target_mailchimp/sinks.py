"""One sink per input stream. Each drains the streams it depends on before itself."""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.sinks import BatchSink

from target_mailchimp.audit import FAILED, AuditEntry
from target_mailchimp.deletions import write_deletions
from target_mailchimp.ecommerce import write_store_objects
from target_mailchimp.members import MemberWriter
from target_mailchimp.record_dates import date_fields, date_problem
from target_mailchimp.tags import write_member_tags, write_tags
from target_mailchimp.written import WrittenRecords, audit_key, digest, fingerprint, record_key

if TYPE_CHECKING:
    from target_mailchimp.run_context import RunContext
    from target_mailchimp.target import TargetMailchimp


class MailchimpSink(BatchSink):
    """Buffers records; `write` sends a whole batch. Per-record problems go to the audit trail;
    an outage (retries exhausted) raises so the target stops without emitting STATE."""

    # Streams whose pending records must reach Mailchimp first (e.g. products before orders,
    # members before their tags). singer-sdk drains sinks in arrival order, so we enforce it.
    depends_on: ClassVar[tuple[str, ...]] = ()
    # A record breaking its tap's schema is still checked by our own rules (email, ids...)
    # and, if unusable, lands in the audit trail: one bad record must not stop the run.
    fail_on_record_validation_exception = False

    def get_validator(self) -> None:
        """No JSON-schema validation of each record: it was half the target's CPU and decided
        nothing (a failure was only logged, with a traceback, since one bad record must not
        stop the run). What matters is checked where the record is used (email, ids, status,
        order lines, merge values fitted to their type) and a record that fails it goes to
        the audit trail with its reason; anything else Mailchimp refuses lands there too."""
        return None

    def _validate_and_parse(self, record: dict) -> dict:
        """The record as the source wrote it: no datetime made of each date-time field (a
        schema walk per record); `_set_apart_bad_dates` checks them once per drain."""
        return record

    def take(self, record: dict[str, Any]) -> None:
        """The SDK's per-record steps that matter here, for the target's lean path: the key
        check (a record without its key stops the run, as before), no `_sdc_` fields, into
        the pending batch, counted."""
        if not self._key_set <= record.keys():
            self._singer_validate_message(record)  # raises, naming the keys
        self._remove_sdc_metadata_from_record(record)  # the SDK's own list of its fields
        context = self._get_context(record)
        context.setdefault("records", []).append(record)
        self.tally_record_read()
        self.record_counter_metric.increment()

    @cached_property
    def _key_set(self) -> frozenset[str]:
        return frozenset(self.key_properties or ())

    @cached_property
    def date_fields(self) -> dict[str, str]:
        return date_fields(self.schema)

    def __init__(self, target: TargetMailchimp, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.mailchimp_target = target

    @property
    def run(self) -> RunContext:
        return self.mailchimp_target.run_context

    def process_batch(self, context: dict) -> None:
        self.mailchimp_target.drain_streams(self.depends_on)
        records = context.get("records", [])
        if not records:
            return
        reconciler = self.mailchimp_target.reconciler
        if reconciler is not None:  # reconcile mode: the whole input first, then the drift
            # Nothing set apart: a member missing from the full desired state would be archived.
            reconciler.collect(self.stream_name, records)
            self.tally_record_written(len(records))
            return
        usable = self._set_apart_bad_dates(records)
        written = self.run.written
        if usable and written is None:
            self.write(usable)
        elif usable:
            self._write_changed(written, usable)
        self.tally_record_written(len(records))

    def _set_apart_bad_dates(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records whose date-time fields can be read; the others go to the audit trail
        (bad input: fixed at the source, not healed)."""
        if not self.date_fields:
            return records
        usable, refused = [], []
        for record in records:
            problem = date_problem(record, self.date_fields)
            if problem is None:
                usable.append(record)
            else:
                operation = "delete" if self.stream_name == "deletions" else "upsert"
                refused.append(AuditEntry(self.stream_name,
                                          audit_key(record, self.key_properties), operation,
                                          FAILED, reason=problem, payload=record))
        if refused:
            self.logger.warning("%s: %d records with an unreadable date-time, not written "
                                "(audit trail)", self.stream_name, len(refused))
            self.run.audit.record(refused)
        return usable

    def _write_changed(self, written: WrittenRecords, records: list[dict[str, Any]]) -> None:
        """Write only the records that differ from what was last written for their key."""
        keys = [record_key(record, self.key_properties) for record in records]
        counts = Counter(key for key in keys if key is not None)
        # A key twice in one batch: the writer picks the newest; remember neither version.
        unique = {key: record for key, record in zip(keys, records, strict=True)
                  if key is not None and counts[key] == 1}
        digests = {key: digest(record) for key, record in unique.items()}
        same = written.unchanged(  # digests remembered by earlier versions still count
            self.stream_name, digests,
            legacy=lambda key: fingerprint(unique[key], self.date_fields))
        changed = [record for key, record in zip(keys, records, strict=True) if key not in same]
        if same:
            self.logger.info("%s: %d records unchanged since written, not sent again",
                             self.stream_name, len(same))
        if not changed:
            return
        before = written.last_audit_id()
        self.write(changed)
        failed = written.failed_since(self.stream_name, before)
        by_audit_key = {audit_key(record, self.key_properties): key
                        for key, record in zip(keys, records, strict=True) if key in digests}
        if not failed <= by_audit_key.keys():
            return  # a refusal we cannot tie to its record: remember nothing of this batch
        refused = {by_audit_key[key] for key in failed}
        written.remember(self.stream_name, {key: digest for key, digest in digests.items()
                                            if key not in same and key not in refused})

    def write(self, records: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class MembersSink(MailchimpSink):
    def write(self, records: list[dict[str, Any]]) -> None:
        counts = MemberWriter(self.run).write(records)
        self.logger.info("members: %s", counts)


class TagsSink(MailchimpSink):
    def write(self, records: list[dict[str, Any]]) -> None:
        write_tags(self.run, self.mailchimp_target.segments, records)


class MemberTagsSink(MailchimpSink):
    depends_on = ("members", "tags")

    def write(self, records: list[dict[str, Any]]) -> None:
        write_member_tags(self.run, self.mailchimp_target.segments, records)


class StoreObjectSink(MailchimpSink):
    """customers, products, orders: PUT upserts (or one /batches job for large volumes)."""

    def write(self, records: list[dict[str, Any]]) -> None:
        write_store_objects(self.run, self.stream_name, records)


class CustomersSink(StoreObjectSink):
    # A customer adds a (transactional) list member; the member's own record goes first so
    # its status_if_new applies.
    depends_on = ("members",)


class ProductsSink(StoreObjectSink):
    pass


class OrdersSink(StoreObjectSink):
    depends_on = ("customers", "products")


class DeletionsSink(MailchimpSink):
    # A deletion is the newest fact about a key: everything before it is written first.
    depends_on = ("members", "member_tags", "customers", "products", "orders")

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.run.written is not None:
            self.run.written.forget_deleted(
                (str(r.get("entity") or ""), str(r.get("key"))) for r in records)
        write_deletions(self.run, records)
        if any(r.get("entity") == "member" for r in records):
            # Members archived by us: the next check reads every archived contact again
            # rather than rely on archiving moving `last_changed` (unconfirmed).
            self.run.audience.forget_archived()


class IgnoredStreamSink(BatchSink):
    """Streams this target does not know, when `unknown_streams` is `ignore`."""

    def setup(self) -> None:
        self.logger.warning("Stream '%s' is not a target stream; its records are ignored.",
                            self.stream_name)

    def process_record(self, record: dict, context: dict) -> None:
        return None

    def process_batch(self, context: dict) -> None:
        return None


SINKS: dict[str, type[MailchimpSink]] = {
    "members": MembersSink,
    "tags": TagsSink,
    "member_tags": MemberTagsSink,
    "customers": CustomersSink,
    "products": ProductsSink,
    "orders": OrdersSink,
    "deletions": DeletionsSink,
}
