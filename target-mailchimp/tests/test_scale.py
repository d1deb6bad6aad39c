"""At scale (issue 9): Mailchimp calls grow with what a run writes, never with the audience;
no sleeping through batch jobs; no per-record work that decides nothing.

Member reads are paged by 100 here (1,000 in production) so that a read whose size follows the
audience shows up in the call counts of a small, fast test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from target_mailchimp import operations
from target_mailchimp.client import MailchimpClient
from target_mailchimp.sinks import MailchimpSink
from target_mailchimp.testing import audit_rows, by_email, run_target, state, stream

PEOPLE = 600
OLD = "2020-01-01T00:00:00Z"
MEMBER_READS = "GET /lists/*/members"


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    paginate = MailchimpClient.paginate

    def paged_by_100(self: MailchimpClient, path: str, items_key: str,
                     params: dict[str, Any] | None = None, page_size: int = 1000) -> Any:
        return paginate(self, path, items_key, params, page_size=100)

    monkeypatch.setattr(MailchimpClient, "paginate", paged_by_100)


@pytest.fixture
def slow_drains(mailchimp_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each drain takes a few seconds, as at scale (Mailchimp's times have whole seconds):
    without it every change of a first sync falls in one second."""
    process_batch = MailchimpSink.process_batch

    def slow_drain(sink: MailchimpSink, context: dict) -> None:
        mailchimp_sandbox.advance_clock(3)
        process_batch(sink, context)

    monkeypatch.setattr(MailchimpSink, "process_batch", slow_drain)


def first_sync() -> list[dict[str, Any]]:
    emails = [f"p{i}@example.com" for i in range(PEOPLE)]
    return [
        *stream("members", [{"email": e, "source_updated_at": OLD,
                             "merge_fields": {"FNAME": "One"}} for e in emails]),
        *stream("tags", [{"tag_key": "T", "name": "Customer"}]),
        *stream("member_tags", [{"email": e, "tag_key": "T", "tag_name": "Customer"}
                                for e in emails]),
        *stream("customers", [{"id": f"C{i}", "email": e} for i, e in enumerate(emails)]),
        state({"done": 1}),
    ]


def test_a_first_sync_in_drains_reads_members_in_proportion_to_its_writes(
        mailchimp_sandbox: Any, config: dict[str, Any], small_pages: None,
        slow_drains: None) -> None:
    # 4 drains per stream; each drain used to page through every member changed so far.
    config.update(batch_size_rows=150, batch_operations_threshold=100)
    run_target(config, first_sync())

    members = by_email(mailchimp_sandbox)
    assert len(members) == PEOPLE
    assert len(mailchimp_sandbox.store("exact-store")["customers"]) == PEOPLE
    assert all(m["tags"] == ["Customer"] for m in members.values())
    calls = mailchimp_sandbox.calls()["by_endpoint"]
    # Each change read about once (600 members written, then moved again by their tag and
    # customer: 12 pages of 100) plus one read per drain; it was 67 with a read-back of
    # every member changed in the last minutes after each customer and tag drain.
    assert calls[MEMBER_READS] <= 25, calls

    # The members' last_changed now comes from our customers and tags, not from the member
    # writes: an older source update must still be applied (not mistaken for an edit made in
    # Mailchimp), and ten changes cost at most 3 + 10 calls.
    mailchimp_sandbox.reset_calls()
    changed = [{"email": f"p{i}@example.com", "source_updated_at": OLD,
                "merge_fields": {"FNAME": "Two"}} for i in range(10)]
    run_target(config, stream("members", changed))
    members = by_email(mailchimp_sandbox)
    assert [members[f"p{i}@example.com"]["merge_fields"]["FNAME"] for i in range(10)] == [
        "Two"] * 10
    assert audit_rows(config, stream="members", outcome="skipped") == []
    # Timestamps this old used to page through all 600 members again (+ 6 calls by 100, 16
    # at 10k in bench/run); the audience as the last run read it is remembered instead, and
    # only the changes of the last run's last second are read again (+ 1 here: its 150
    # members take 2 pages of 100).
    assert mailchimp_sandbox.calls()["total"] <= 3 + 10 + 1, mailchimp_sandbox.calls()


def test_ten_recent_changes_cost_three_calls_plus_one_each(mailchimp_sandbox: Any,
                                                          config: dict[str, Any],
                                                          small_pages: None,
                                                          slow_drains: None) -> None:
    config.update(batch_size_rows=100, batch_operations_threshold=100)
    run_target(config, first_sync())
    mailchimp_sandbox.advance_clock(60)
    mailchimp_sandbox.reset_calls()
    # As in bench/run: some changes are recent, some carry a source time older than the
    # first sync (a contact's own Modified, Exact's local time): neither may cost a read of
    # the audience.
    recent = "2100-01-01T00:00:00Z"  # after everything Mailchimp holds
    run_target(config, stream("members", [
        {"email": f"p{i}@example.com", "source_updated_at": recent if i % 2 else OLD,
         "merge_fields": {"FNAME": "Three"}} for i in range(10)]))
    members = by_email(mailchimp_sandbox)
    assert [members[f"p{i}@example.com"]["merge_fields"]["FNAME"] for i in range(10)] == [
        "Three"] * 10
    # merge fields, members changed since, archived members; then one PUT per change.
    assert mailchimp_sandbox.calls()["total"] <= 3 + 10, mailchimp_sandbox.calls()


def test_an_edit_in_mailchimp_between_runs_is_kept_by_a_later_run(
        mailchimp_sandbox: Any, config: dict[str, Any], small_pages: None) -> None:
    # Run 2 reads e's edit but does not write e; run 3 (which reads only what changed since
    # run 2) must still know of it, and keep Mailchimp's version over an older source update.
    emails = ["e@example.com", "f@example.com"]
    run_target(config, stream("members", [{"email": e, "source_updated_at": OLD,
                                           "merge_fields": {"FNAME": "Source1"}}
                                          for e in emails]))
    mailchimp_sandbox.advance_clock(3600)
    mailchimp_sandbox.set_member_status("e@example.com", "unsubscribed")
    mailchimp_sandbox.advance_clock(3600)
    run_target(config, stream("members", [{"email": "f@example.com", "source_updated_at": OLD,
                                           "merge_fields": {"FNAME": "Source2"}}]))
    mailchimp_sandbox.advance_clock(3600)
    run_target(config, stream("members", [{"email": e, "source_updated_at": OLD,
                                           "merge_fields": {"FNAME": "Source3"}}
                                          for e in emails]))
    members = by_email(mailchimp_sandbox)
    assert members["e@example.com"]["merge_fields"]["FNAME"] == "Source1"
    assert members["e@example.com"]["status"] == "unsubscribed"
    assert members["f@example.com"]["merge_fields"]["FNAME"] == "Source3"
    [skipped] = audit_rows(config, stream="members", outcome="skipped")
    assert skipped["record_key"] == "e@example.com"
    assert "changed in Mailchimp" in skipped["reason"]


def test_an_edit_in_mailchimp_after_our_customer_write_is_kept(mailchimp_sandbox: Any,
                                                              config: dict[str, Any]) -> None:
    run_target(config, stream("members", [{"email": "e@example.com", "source_updated_at": OLD,
                                           "merge_fields": {"FNAME": "Source1"}}]))
    mailchimp_sandbox.advance_clock(5)
    run_target(config, stream("customers", [{"id": "C1", "email": "e@example.com",
                                             "first_name": "Eve"}]))
    # Well after our customer write (beyond any clock margin), someone edits e in Mailchimp.
    mailchimp_sandbox.advance_clock(3600)
    mailchimp_sandbox.set_member_status("e@example.com", "unsubscribed")
    run_target(config, stream("members", [{"email": "e@example.com", "source_updated_at": OLD,
                                           "merge_fields": {"FNAME": "Source2"}}]))
    assert by_email(mailchimp_sandbox)["e@example.com"]["merge_fields"]["FNAME"] == "Source1"
    [skipped] = audit_rows(config, stream="members", outcome="skipped")
    assert "changed in Mailchimp" in skipped["reason"]


def test_batch_jobs_are_polled_soon_then_less_often(mailchimp_sandbox: Any,
                                                    config: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A job that takes a second must not cost the full poll interval (57 s asleep at 30k).
    config.update(batch_operations_threshold=5, batch_poll_interval=30)
    monkeypatch.setattr(mailchimp_sandbox.context.settings, "batch_start_delay", 1.0)
    waits: list[float] = []

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

    monkeypatch.setattr(operations, "time", Clock)
    run_target(config, stream("products", [{"id": f"P{i}", "title": "W", "price": 1.0}
                                           for i in range(6)]))
    assert len(mailchimp_sandbox.store("exact-store")["products"]) == 6
    # Asleep far less than one poll interval (30 s) in all; roomy, as the job's second is
    # wall time that a busy machine stretches (more polls, each a little longer).
    assert waits and waits[0] <= 0.5 and sum(waits) < 15 and max(waits) < 10, waits


def test_records_breaking_their_schema_are_judged_by_our_rules_not_the_sdks_validator(
        mailchimp_sandbox: Any, config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    # JSON-schema validation was half the target's CPU, and decided nothing: with
    # fail_on_record_validation_exception off it only logged a traceback per bad record.
    run_target(config, stream("members", [{"email": 42}, {"email": "ok@example.com",
                                                         "vip": "yes"}]))
    assert "ok@example.com" in by_email(mailchimp_sandbox)
    [failed] = audit_rows(config, outcome="failed")
    assert failed["record_key"] == "42" and failed["reason"] == "invalid email address"
    assert "Record validation failed" not in caplog.text


def test_changed_customers_cost_their_puts_only(mailchimp_sandbox: Any,
                                               config: dict[str, Any]) -> None:
    # bench/run's incremental: 8 customers cost 8 PUTs + GET store + 2 PATCH is_syncing. The
    # GET only asked whether the store exists, and an incremental's few changes are no import:
    # no is_syncing on and off (their automations fire); the upserts' 404 would say the
    # store is missing.
    run_target(config, stream("customers", [{"id": "C1", "email": "c1@example.com"}]))
    mailchimp_sandbox.reset_calls()
    run_target(config, stream("customers", [{"id": f"C{i}", "email": f"c{i}@example.com",
                                             "first_name": "New"} for i in range(1, 4)]))
    store = mailchimp_sandbox.store("exact-store")
    assert [store["customers"][f"C{i}"]["first_name"] for i in range(1, 4)] == ["New"] * 3
    assert store["store"]["is_syncing"] is False
    calls = mailchimp_sandbox.calls()["by_endpoint"]
    assert "GET /ecommerce/stores/*" not in calls, calls
    assert "PATCH /ecommerce/stores/*" not in calls, calls
    assert calls["PUT /ecommerce/stores/*/customers/*"] == 3, calls
