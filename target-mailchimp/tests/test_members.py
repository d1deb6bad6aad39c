"""Members against the sandbox: bulk create, consent, dedup, conflicts, merge fields."""

from __future__ import annotations

import datetime

import requests
from target_mailchimp.audit import AuditStore
from target_mailchimp.client import subscriber_hash
from target_mailchimp.testing import (
    audit_rows,
    by_email,
    records,
    run_target,
    schema,
    state,
    stream,
)
from target_mailchimp.values import iso


def test_bulk_create_uses_batch_subscribe_and_emits_state(mailchimp_sandbox, config):
    rows = [{"email": f"Person{i}@Example.com", "merge_fields": {"FNAME": f"P{i}"}}
            for i in range(30)]
    states = run_target(config, [*stream("members", rows), state({"bookmarks": {"x": 1}})])

    members = by_email(mailchimp_sandbox)
    assert set(members) == {f"person{i}@example.com" for i in range(30)}
    assert all(m["status"] == "subscribed" for m in members.values())
    assert members["person7@example.com"]["merge_fields"]["FNAME"] == "P7"
    calls = mailchimp_sandbox.calls()["by_endpoint"]
    assert sum(v for k, v in calls.items() if k.startswith("POST") and "lists/" in k
               and "members" not in k and "merge" not in k and "segments" not in k) == 1
    assert states == [{"bookmarks": {"x": 1}}]
    ok = audit_rows(config, stream="members", outcome="ok")
    assert len(ok) == 30


def test_existing_unsubscribed_cleaned_archived_are_never_resubscribed(mailchimp_sandbox, config):
    people = ["unsub@example.com", "cleaned@example.com", "gone@example.com", "fine@example.com"]
    run_target(config, stream("members", [{"email": e} for e in people]))
    mailchimp_sandbox.set_member_status("unsub@example.com", "unsubscribed")
    mailchimp_sandbox.set_member_status("cleaned@example.com", "cleaned")
    mailchimp_sandbox.set_member_status("gone@example.com", "archived")

    # The source says "subscribed if new" and carries fresh data (no timestamps: always apply).
    run_target(config, stream("members", [
        {"email": e, "status_if_new": "subscribed", "merge_fields": {"LNAME": "New"}}
        for e in people
    ]))

    members = by_email(mailchimp_sandbox)
    assert members["unsub@example.com"]["status"] == "unsubscribed"
    assert members["cleaned@example.com"]["status"] == "cleaned"
    assert members["gone@example.com"]["status"] == "archived"
    assert members["fine@example.com"]["status"] == "subscribed"
    # The update itself went through (no status was sent that the sandbox had to refuse).
    assert members["unsub@example.com"]["merge_fields"]["LNAME"] == "New"
    assert members["cleaned@example.com"]["merge_fields"]["LNAME"] == "New"
    second_run = audit_rows(config, stream="members")[4:]
    outcome = {r["record_key"]: (r["outcome"], r["reason"]) for r in second_run}
    assert outcome["unsub@example.com"][0] == "ok"
    assert outcome["cleaned@example.com"][0] == "ok"
    assert outcome["gone@example.com"][0] == "skipped"
    assert "archived" in outcome["gone@example.com"][1]


def test_opt_out_unsubscribes_existing_and_creates_new_unsubscribed(mailchimp_sandbox, config):
    run_target(config, stream("members", [{"email": "a@example.com"}]))
    run_target(config, stream("members", [
        {"email": "a@example.com", "opt_out": True},
        {"email": "b@example.com", "opt_out": True, "status_if_new": "subscribed"},
    ]))
    members = by_email(mailchimp_sandbox)
    assert members["a@example.com"]["status"] == "unsubscribed"
    assert members["b@example.com"]["status"] == "unsubscribed"


def test_dedup_newest_wins_within_batch(mailchimp_sandbox, config):
    run_target(config, stream("members", [
        {"email": "dup@example.com", "source_updated_at": "2024-01-02T00:00:00Z",
         "merge_fields": {"FNAME": "Newest"}},
        {"email": "DUP@example.com", "source_updated_at": "2024-01-01T00:00:00Z",
         "merge_fields": {"FNAME": "Older"}},
        {"email": "dup@example.com", "merge_fields": {"FNAME": "NoStamp"}},
    ]))
    members = by_email(mailchimp_sandbox)
    assert len(members) == 1
    assert members["dup@example.com"]["merge_fields"]["FNAME"] == "Newest"
    outcomes = sorted(r["outcome"] for r in audit_rows(config, stream="members"))
    assert outcomes == ["ok", "skipped", "skipped"]


def test_change_in_mailchimp_after_source_timestamp_is_kept(mailchimp_sandbox, config):
    run_target(config, stream("members", [
        {"email": "x@example.com", "source_updated_at": "2020-01-01T00:00:00Z",
         "merge_fields": {"FNAME": "Source1"}},
        {"email": "y@example.com", "source_updated_at": "2020-01-01T00:00:00Z",
         "merge_fields": {"FNAME": "Source1"}},
    ]))
    # Someone edits x in Mailchimp (now, i.e. after 2020); y keeps only our own write.
    mailchimp_sandbox.advance_clock(5)
    mailchimp_sandbox.set_member_status("x@example.com", "unsubscribed")

    run_target(config, stream("members", [
        {"email": "x@example.com", "source_updated_at": "2020-06-01T00:00:00Z",
         "merge_fields": {"FNAME": "Source2"}},
        {"email": "y@example.com", "source_updated_at": "2020-06-01T00:00:00Z",
         "merge_fields": {"FNAME": "Source2"}},
    ]))
    members = by_email(mailchimp_sandbox)
    assert members["x@example.com"]["merge_fields"]["FNAME"] == "Source1"
    # Our own earlier write is newer than the source stamp but must not block the update.
    assert members["y@example.com"]["merge_fields"]["FNAME"] == "Source2"
    skipped = audit_rows(config, stream="members", outcome="skipped")
    assert [r["record_key"] for r in skipped] == ["x@example.com"]
    assert "changed in Mailchimp" in skipped[0]["reason"]


def test_missing_merge_fields_are_created_once_with_mapped_types(mailchimp_sandbox, tmp_path,
                                                                 config):
    config["merge_field_map"] = {"company": {"tag": "COMPANY", "type": "text",
                                             "name": "Company"}}
    run_target(config, stream("members", [
        {"email": "m1@example.com", "company": "Acme",
         "merge_fields": {"KVK": "123", "ADDRESS": {"addr1": "Main 1", "city": "Delft",
                                                   "state": "ZH", "zip": "2611", "country": "NL"}}},
        {"email": "m2@example.com", "company": "Bolt", "merge_fields": {"KVK": "456"}},
    ]))
    members = by_email(mailchimp_sandbox)
    assert members["m1@example.com"]["merge_fields"]["COMPANY"] == "Acme"
    assert members["m2@example.com"]["merge_fields"]["KVK"] == "456"
    assert members["m1@example.com"]["merge_fields"]["ADDRESS"]["city"] == "Delft"
    calls = mailchimp_sandbox.calls()["by_endpoint"]
    creates = {k: v for k, v in calls.items() if k.startswith("POST") and "merge-fields" in k}
    assert sum(creates.values()) == 2  # COMPANY and KVK; ADDRESS exists by default


def test_invalid_emails_are_audited_and_nothing_else_is_lost(mailchimp_sandbox, config):
    rows = [{"email": "good1@example.com"}, {"email": "not-an-email"}, {"email": None},
            {"email": "good2@example.com"}, {"email": "fake@invalid"}]
    states = run_target(config, [*stream("members", rows), state({"done": True})])
    members = by_email(mailchimp_sandbox)
    assert {"good1@example.com", "good2@example.com"} <= set(members)
    failed = {r["record_key"]: r["reason"] for r in audit_rows(config, outcome="failed")}
    assert failed["not-an-email"] == "invalid email address"
    assert failed["?"] == "missing email"
    assert "fake@invalid" in failed  # rejected locally or by Mailchimp, with a reason
    assert failed["fake@invalid"]
    assert states == [{"done": True}]


def test_schema_only_input_writes_nothing(mailchimp_sandbox, config):
    run_target(config, [schema("members"), *records("members", [])])
    assert mailchimp_sandbox.members() == []


def test_existing_members_in_volume_update_through_batches(mailchimp_sandbox, config):
    config["batch_operations_threshold"] = 50
    rows = [{"email": f"v{i}@example.com", "merge_fields": {"FNAME": "One"}} for i in range(120)]
    run_target(config, stream("members", rows))
    mailchimp_sandbox.set_member_status("v5@example.com", "unsubscribed")
    mailchimp_sandbox.reset_calls()

    run_target(config, stream("members", [{**r, "merge_fields": {"FNAME": "Two"}}
                                          for r in rows]))
    members = by_email(mailchimp_sandbox)
    assert {m["merge_fields"]["FNAME"] for m in members.values()} == {"Two"}
    assert members["v5@example.com"]["status"] == "unsubscribed"
    calls = mailchimp_sandbox.calls()["by_endpoint"]
    assert calls.get("POST /batches") == 1
    assert not any(k.startswith("PUT") for k in calls)
    assert len(audit_rows(config, stream="members", operation="update", outcome="ok")) == 120


def test_call_count_for_a_bulk_load(mailchimp_sandbox, config):
    rows = [{"email": f"bulk{i}@example.com", "source_updated_at": "2024-01-01T00:00:00Z",
             "merge_fields": {"FNAME": "B"}} for i in range(1200)]
    run_target(config, stream("members", rows))
    assert len(mailchimp_sandbox.members()) == 1200
    calls = mailchimp_sandbox.calls()
    # 3 batch-subscribe calls + merge fields + 2 cheap reads (changed since, archived).
    assert calls["total"] <= 6, calls["by_endpoint"]


def test_record_breaking_its_schema_is_audited_not_fatal(mailchimp_sandbox, config):
    run_target(config, [*stream("members", [{"email": 42}, {"email": "fine@example.com"}])])
    assert "fine@example.com" in by_email(mailchimp_sandbox)
    [failed] = audit_rows(config, outcome="failed")
    assert failed["record_key"] == "42"


def _sync_member(config, email: str, stamp: str, first_name: str) -> None:
    run_target(config, stream("members", [
        {"email": email, "source_updated_at": stamp, "merge_fields": {"FNAME": first_name}}]))


def test_own_tag_writes_are_not_mistaken_for_edits_in_mailchimp(mailchimp_sandbox, config):
    _sync_member(config, "t@example.com", "2020-01-01T00:00:00Z", "Source1")
    # Tagging (a segment update) moves the member's last_changed in Mailchimp.
    mailchimp_sandbox.advance_clock(5)
    run_target(config, stream("member_tags", [
        {"email": "t@example.com", "tag_key": "k", "tag_name": "Customer"}]))
    mailchimp_sandbox.advance_clock(5)

    _sync_member(config, "t@example.com", "2020-06-01T00:00:00Z", "Source2")
    assert by_email(mailchimp_sandbox)["t@example.com"]["merge_fields"]["FNAME"] == "Source2"
    assert audit_rows(config, stream="members", outcome="skipped") == []


def test_members_created_by_our_customers_are_not_mistaken_for_edits(mailchimp_sandbox,
                                                                     config):
    # A customer without a members record creates the list member (transactional).
    run_target(config, stream("customers", [{"id": "C9", "email": "buyer9@example.com"}]))
    mailchimp_sandbox.advance_clock(5)
    _sync_member(config, "buyer9@example.com", "2020-06-01T00:00:00Z", "Bea")
    assert by_email(mailchimp_sandbox)["buyer9@example.com"]["merge_fields"]["FNAME"] == "Bea"
    assert audit_rows(config, stream="members", outcome="skipped") == []


def test_write_of_a_run_killed_twice_is_still_recognised(mailchimp_sandbox, config):
    run_target(config, stream("members", [
        {"email": "z@example.com", "source_updated_at": "2020-01-01T00:00:00Z"}]))
    audit = AuditStore(config["audit_store_url"], "sim")
    now = datetime.datetime.now(datetime.timezone.utc)
    # Run 2 notes its write, sends it, and is killed before recording Mailchimp's answer...
    audit.mark_members_pending(mailchimp_sandbox.list_id, ["z@example.com"], iso(now))
    mailchimp_sandbox.advance_clock(5)
    requests.put(f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/members/"
                 f"{subscriber_hash('z@example.com')}", auth=("x", mailchimp_sandbox.api_key),
                 json={"email_address": "z@example.com", "status_if_new": "subscribed",
                       "merge_fields": {"FNAME": "Run2"}}, timeout=10).raise_for_status()
    # ...and run 3, an hour later, is killed right after its own write-ahead note.
    later = now + datetime.timedelta(hours=1)
    audit.mark_members_pending(mailchimp_sandbox.list_id, ["z@example.com"], iso(later))
    audit.close()

    _sync_member(config, "z@example.com", "2020-06-01T00:00:00Z", "Run4")
    assert by_email(mailchimp_sandbox)["z@example.com"]["merge_fields"]["FNAME"] == "Run4"


def test_a_dead_runs_note_does_not_swallow_later_edits_in_mailchimp(mailchimp_sandbox, config):
    _sync_member(config, "m@example.com", "2020-01-01T00:00:00Z", "Source1")
    # A run notes its write to m and dies before sending it.
    audit = AuditStore(config["audit_store_url"], "sim")
    audit.mark_members_pending(mailchimp_sandbox.list_id, ["m@example.com"],
                               iso(datetime.datetime.now(datetime.timezone.utc)))
    audit.close()
    run_target(config, stream("members", [{"email": "other@example.com"}]))
    # Days later someone edits m in Mailchimp; then an older source update arrives.
    mailchimp_sandbox.advance_clock(3 * 86400)
    mailchimp_sandbox.set_member_status("m@example.com", "unsubscribed")
    _sync_member(config, "m@example.com", "2020-06-01T00:00:00Z", "Source2")
    assert by_email(mailchimp_sandbox)["m@example.com"]["merge_fields"]["FNAME"] == "Source1"
    [skipped] = audit_rows(config, stream="members", outcome="skipped")
    assert "changed in Mailchimp" in skipped["reason"]


def test_renaming_a_tag_is_not_mistaken_for_edits_in_mailchimp(mailchimp_sandbox, config):
    run_target(config, [
        *stream("members", [{"email": "r@example.com", "source_updated_at": "2020-01-01T00:00:00Z",
                             "merge_fields": {"FNAME": "Source1"}}]),
        *stream("tags", [{"tag_key": "vip", "name": "VIP"}]),
        *stream("member_tags", [{"email": "r@example.com", "tag_key": "vip", "tag_name": "VIP"}]),
    ])
    mailchimp_sandbox.advance_clock(5)
    # Renaming (and deleting) a tag moves last_changed of everyone who has it.
    run_target(config, stream("tags", [{"tag_key": "vip", "name": "Gold"}]))
    mailchimp_sandbox.advance_clock(5)
    _sync_member(config, "r@example.com", "2020-06-01T00:00:00Z", "Source2")
    assert by_email(mailchimp_sandbox)["r@example.com"]["merge_fields"]["FNAME"] == "Source2"
    assert audit_rows(config, stream="members", outcome="skipped") == []
