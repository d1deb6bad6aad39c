"""One sink per input stream; each batch is looked up and written in few calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.sinks import BatchSink

from target_exactonline.audit import REPORTED, Decision
from target_exactonline.cost_centers import write_tags
from target_exactonline.exclusions import write_exclusions

if TYPE_CHECKING:
    from target_exactonline.run import Run
    from target_exactonline.target import TargetExactOnline


class ExactSink(BatchSink):
    """Buffers records; `write` handles a batch. Refused writes go to the audit trail; an
    outage (retries exhausted) raises, so the run fails without emitting STATE."""

    # One odd record must not stop the run: our own checks audit what cannot be used.
    fail_on_record_validation_exception = False
    writer: ClassVar[Any] = None

    def __init__(self, target: TargetExactOnline, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.exact_target = target

    @property
    def run(self) -> Run:
        return self.exact_target.run

    def process_batch(self, context: dict) -> None:
        records = context.get("records", [])
        if records:
            type(self).writer(self.run, records)
            self.tally_record_written(len(records))


def report_email_changes(run: Run, records: list[dict[str, Any]]) -> None:
    """Exact stays the source of identity: an address changed in Mailchimp is only reported."""
    run.audit.record(*(Decision(
        "email_changes", f"{r.get('old_email')}→{r.get('new_email')}", "change_email", REPORTED,
        f"changed in Mailchimp at {r.get('fired_at')}; Exact is not changed (it is the source "
        "of identity: change the address there)") for r in records))


class ExclusionsSink(ExactSink):
    writer = staticmethod(write_exclusions)


class TagsSink(ExactSink):
    writer = staticmethod(write_tags)


class EmailChangesSink(ExactSink):
    writer = staticmethod(report_email_changes)


class IgnoredStreamSink(BatchSink):
    def setup(self) -> None:
        self.logger.warning("Stream '%s' is not a target-exactonline stream; its records are "
                            "ignored.", self.stream_name)

    def process_record(self, record: dict, context: dict) -> None:
        return None

    def process_batch(self, context: dict) -> None:
        return None


SINKS: dict[str, type[BatchSink]] = {
    "mailing_exclusions": ExclusionsSink,
    "tags": TagsSink,
    "email_changes": EmailChangesSink,
}
