"""STATE handling, runs that change nothing, crash recovery, and the executable."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mapper_exact_mailchimp import mapper as mapper_module
from mapper_exact_mailchimp.mapper import ExactToMailchimpMapper, LookupStoreBusyError
from mapper_test_kit import (
    CollectingWriter,
    account,
    contact,
    cost_center,
    dead_letters,
    guid,
    invoice,
    line,
    member_inputs_read,
    opened_store,
    rec,
    receivable,
    state,
)

COMPANY = {
    "accounts": [account(1), account(2)],
    "contacts": [contact(1, 1), contact(2, 2)],
    "sales_invoices": [invoice(1, 1)],
    "sales_invoice_lines": [line(1, 1)],
}


def test_state_passes_unchanged_and_only_after_the_records_it_covers(run_mapper):
    odd_state = {"bookmarks": {"contacts": {"replication_key_value": 2001.5,
                                            "partitions": [{"context": {"division": 101}}]}},
                 "note": "ü"}
    out = run_mapper([
        rec("accounts", account(1)), rec("contacts", contact(1, 1)), *member_inputs_read(),
        state({"bookmarks": {"contacts": {"replication_key_value": 2001}}}),
        rec("accounts", account(2)), rec("contacts", contact(2, 2)),
        state(odd_state),
    ])

    sequence = [(m["type"], m.get("record", {}).get("email")) for m in out if m["type"] != "SCHEMA"]
    assert sequence == [
        ("RECORD", "jan.contact1@example.nl"), ("STATE", None),
        ("RECORD", "jan.contact2@example.nl"), ("STATE", None),
    ]
    assert [m["value"] for m in out if m["type"] == "STATE"][-1] == odd_state


def test_account_whose_contacts_have_not_arrived_yet_is_held_until_they_do(run_mapper):
    # The accounts stream ends (STATE) before any contact is read: no account-inbox member
    # may be created only to be replaced when the contacts arrive.
    out = run_mapper([
        rec("accounts", account(1)), state({"b": 1}),
        rec("contacts", contact(1, 1)), state({"b": 2}),
    ])
    assert [r["email"] for r in out.records("members")] == ["jan.contact1@example.nl"]


def test_second_identical_run_writes_no_records(pipeline):
    first = pipeline.run(COMPANY)
    assert first.records()

    again = pipeline.run(COMPANY)  # the tap resends everything, e.g. after a reset bookmark
    assert again.records() == []
    assert [m["type"] for m in again].count("STATE") >= 1  # state still flows

    full_refresh = pipeline.run(COMPANY, full_refresh=True)
    assert full_refresh.records() == []


def test_outputs_the_target_never_confirmed_are_sent_again(pipeline):
    first = pipeline.run(COMPANY, target_confirms=False)  # e.g. target failed at its last drain

    retry = pipeline.run(COMPANY)

    assert retry.records() == first.records()
    assert pipeline.run(COMPANY).records() == []  # confirmed now


def test_only_outputs_after_the_confirmed_state_are_sent_again(pipeline, run_mapper):
    messages = [
        rec("accounts", account(1)), rec("contacts", contact(1, 1)), *member_inputs_read(),
        state({"b": 1}),
        rec("accounts", account(2)), rec("contacts", contact(2, 2)), state({"b": 2}),
    ]
    run_mapper(messages)
    # The target confirmed {"b": 1} and then died: the tap restarts from there.
    pipeline.saved_state = {"b": 1}

    retry = pipeline.run(messages[messages.index(state({"b": 1})) + 1:])

    assert [r["email"] for r in retry.records("members")] == ["jan.contact2@example.nl"]


class DyingWriter(CollectingWriter):
    """Stands in for a pipe that breaks (or a kill) after some messages."""

    def __init__(self, survive: int) -> None:
        super().__init__()
        self.survive = survive

    def write_message(self, message: object) -> None:
        if len(self.messages) >= self.survive:
            raise BrokenPipeError("target went away")
        super().write_message(message)


@pytest.mark.parametrize("survive", [0, 1, 2, 3, 4])
def test_mapper_dying_mid_run_loses_nothing_on_the_next_run(survive, mapper_config, pipeline):
    messages = [
        rec("accounts", account(1)), rec("contacts", contact(1, 1)), state({"b": 1}),
        rec("accounts", account(2)), rec("contacts", contact(2, 2)), state({"b": 2}),
    ]
    writer = DyingWriter(survive)
    dying = ExactToMailchimpMapper(config=mapper_config, message_writer=writer)
    with pytest.raises(BrokenPipeError):
        dying.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    dying.close()
    # Meltano saved the last STATE that got through (if any); the tap resumes after it.
    confirmed = [m["value"] for m in writer.messages if m["type"] == "STATE"]
    pipeline.saved_state = confirmed[-1] if confirmed else None
    resume_at = 3 if confirmed else 0

    retry = pipeline.run(messages[resume_at:])

    delivered = {m["record"]["email"] for m in writer.messages + list(retry)
                 if m["type"] == "RECORD"}
    assert delivered == {"jan.contact1@example.nl", "jan.contact2@example.nl"}
    assert pipeline.run(messages[3:]).records() == []


def test_record_without_division_is_reported_and_the_run_goes_on(run_mapper, mapper_config):
    broken = account(3)
    del broken["Division"]
    out = run_mapper([rec("accounts", broken), rec("accounts", account(1)), state({"b": 1})])

    assert [r["email"] for r in out.records("members")] == ["info@bakkerij1.nl"]
    [letter] = dead_letters(mapper_config)
    assert (letter["stream"], letter["key"]) == ("accounts", guid(3))
    assert "without ID or Division" in letter["reason"]


def test_activate_version_is_ignored_and_batch_is_refused(run_mapper):
    out = run_mapper([{"type": "ACTIVATE_VERSION", "stream": "accounts", "version": 1},
                      rec("accounts", account(1))])
    assert [r["email"] for r in out.records("members")] == ["info@bakkerij1.nl"]

    with pytest.raises(NotImplementedError, match="BATCH messages are not supported"):
        run_mapper([{"type": "BATCH", "stream": "accounts", "encoding": {}, "manifest": []}])


def test_inactive_customers_are_tagged_by_rule(run_mapper):
    out = run_mapper([
        rec("accounts", account(1)), rec("accounts", account(2)),
        rec("accounts", account(3, Status="P")),
        rec("sales_invoices", invoice(1, 1, InvoiceDate="2019-01-01T00:00:00Z")),
        rec("sales_invoices", invoice(2, 2, InvoiceDate="2099-01-01T00:00:00Z")),
        rec("sales_invoice_lines", line(1, 1, None)), rec("sales_invoice_lines", line(2, 2, None)),
    ], inactive_after_days=365)

    tagged = {r["email"] for r in out.records("member_tags")
              if r["tag_name"] == "Inactive customer"}
    assert tagged == {"info@bakkerij1.nl"}  # account 2 bought recently, account 3 is a prospect


def test_a_second_run_on_the_same_store_waits_then_fails_clearly(mapper_config, monkeypatch):
    monkeypatch.setattr(mapper_module, "STORE_LOCK_TIMEOUT_SECONDS", 0.05)
    first = ExactToMailchimpMapper(config=mapper_config)
    try:
        with pytest.raises(LookupStoreBusyError, match="in use by another run"):
            ExactToMailchimpMapper(config=mapper_config)
    finally:
        first.close()


def test_executable_reads_stdin_and_writes_singer_messages(tmp_path, mapper_config):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(mapper_config))
    messages = [rec("accounts", account(1)), rec("contacts", contact(1, 1)), state({"b": 1})]
    executable = Path(sys.executable).parent / "mapper-exact-mailchimp"

    done = subprocess.run(
        [str(executable), "--config", str(config_file)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True, text=True, timeout=60, check=True,
    )

    lines = [json.loads(text) for text in done.stdout.splitlines()]
    assert [m["type"] for m in lines] == ["SCHEMA", "RECORD", "STATE"]
    assert lines[1]["record"]["email"] == "jan.contact1@example.nl"
    assert lines[2]["value"] == {"b": 1}


def test_state_covering_deferred_records_waits_for_them(pipeline):
    # The tap never moves past the contacts stream: an address might still gain a holder (and
    # account 2 a contact), so the members go out only at the end of input and the STATEs read
    # before that are held back until the records are out.
    first = pipeline.run({"accounts": [account(1), account(2)], "contacts": [contact(1, 1)]})

    kinds = [(m["type"], m.get("record", {}).get("email")) for m in first if m["type"] != "SCHEMA"]
    assert kinds == [("RECORD", "info@bakkerij2.nl"), ("RECORD", "jan.contact1@example.nl"),
                     ("STATE", None), ("STATE", None)]
    assert pipeline.run({"accounts": [account(1), account(2)],
                         "contacts": [contact(1, 1)]}).records() == []


def test_members_wait_until_every_stream_they_are_computed_from_is_read(run_mapper):
    # An address can gain a holder in a later division or after a mid-stream STATE, and the
    # invoices decide its tags (and inactivity): members computed earlier would go out twice.
    out = run_mapper([
        rec("accounts", account(1)), rec("accounts", account(2)), state({"b": 1}),
        rec("contacts", contact(1, 1)), state({"b": 2}),
        rec("cost_centers", cost_center("100", "Retail")), state({"b": 3}),
        rec("receivables", receivable(1, 1, 1, paid=True)), state({"b": 4}),
        rec("accounts", account(3)),  # read at the end of input, after every STATE
    ])

    kinds = [(m["type"], m.get("record", {}).get("email") or m.get("value"))
             for m in out if m["type"] != "SCHEMA"]
    # The tag depends on no other stream: it goes at once. Deletions and invoices were never
    # read, so the members wait for the end of input, and the STATEs with them.
    assert kinds == [
        ("RECORD", None),  # the cost-center tag
        ("RECORD", "info@bakkerij2.nl"), ("RECORD", "info@bakkerij3.nl"),
        ("RECORD", "jan.contact1@example.nl"),
        ("STATE", {"b": 1}), ("STATE", {"b": 2}), ("STATE", {"b": 3}), ("STATE", {"b": 4}),
    ]


def test_about_lists_the_settings_and_their_defaults():
    executable = Path(sys.executable).parent / "mapper-exact-mailchimp"
    done = subprocess.run([str(executable), "--about", "--format", "json"],
                          capture_output=True, text=True, timeout=60, check=True)
    settings = json.loads(done.stdout)["settings"]["properties"]
    assert settings["excluded_handling"]["default"] == "unsubscribe"
    # No default path: a fleet's EXACTMC_DATABASE_URL applies when neither is set.
    assert "default" not in settings["store_url"]
    assert "default" not in settings["lookup_store_path"]
    assert settings["store_namespace"]["default"] == "mapper"


def test_forwarded_state_log_does_not_grow_with_every_run(pipeline, mapper_config):
    for n in range(1, 6):
        pipeline.run({"accounts": [account(n)], "contacts": [contact(n, n)]})

    with opened_store(mapper_config) as db:
        logged = db.execute("SELECT COUNT(*) FROM forwarded_states").fetchone()[0]
    # At most the last two runs' STATEs (echo + one per stream = 3 each), not all 14.
    assert logged <= 2 * 3
