"""The mapper's work per record is bounded (issue 9) without changing what it sends: each
account is recomputed once per run, each address validated once, the store written in
batches, outputs streamed; a kill between any two messages, then a rerun, ends where one
clean run ends."""

from __future__ import annotations

import io
import json
from typing import Any

import email_validator
import pytest
from mapper_exact_mailchimp import emails, flush
from mapper_exact_mailchimp.ledger import OutputLedger
from mapper_exact_mailchimp.mapper import ExactToMailchimpMapper
from mapper_exact_mailchimp.store import connect
from mapper_test_kit import (
    CollectingWriter,
    account,
    contact,
    cost_center,
    deletion,
    fresh_store,
    guid,
    invoice,
    line,
    receivable,
    state,
    tap_run,
)
from test_runs import DyingWriter


def company() -> dict[str, list[dict[str, Any]]]:
    """Six accounts: shared addresses across accounts, an excluded contact, an account inbox,
    invoices with cost centers, a payment and deletions."""
    return {
        "accounts": [account(n) for n in range(1, 7)],
        "contacts": [
            contact(1, 1), contact(2, 2, Email="shared@example.nl"),
            contact(3, 3, Email="Shared@Example.nl", IsMailingExcluded=True,
                    Modified="2024-05-01T10:00:00+00:00"),
            contact(4, 4), contact(5, 4, IsMainContact=False),
        ],  # account 5 and 6: their own inbox
        "deletions": [deletion(1, 5, guid(10_005))],
        "sales_invoices": [invoice(n, n) for n in range(1, 6)],
        "sales_invoice_lines": [line(n, n, cost_center="100" if n % 2 else "200")
                                for n in range(1, 6)],
        "cost_centers": [cost_center("100", "Retail"), cost_center("200", "Horeca")],
        "receivables": [receivable(1, 1, 1, paid=True), receivable(2, 2, 2, paid=False)],
    }


def tap_messages() -> list[dict[str, Any]]:
    """As a tap sends them: a STATE after each stream and mid-stream STATEs as well."""
    messages = tap_run(company())
    with_mid_states: list[dict[str, Any]] = []
    for n, message in enumerate(messages):
        with_mid_states.append(message)
        if message["type"] == "RECORD" and n % 3 == 0:
            with_mid_states.append(state({"mid": n}))
    return with_mid_states


def run(config: dict[str, Any], messages: list[dict[str, Any]],
        writer: CollectingWriter | None = None) -> list[dict[str, Any]]:
    writer = writer or CollectingWriter()
    mapper = ExactToMailchimpMapper(config=config, message_writer=writer)
    try:
        mapper.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    finally:
        mapper.close()
    return writer.messages


def audience(messages: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """What the target ends up holding: the last record per stream and key (deletions remove)."""
    keys = {"members": "email", "tags": "tag_key", "customers": "id", "products": "id",
            "orders": "id"}
    held: dict[tuple[str, str], Any] = {}
    for m in messages:
        if m["type"] != "RECORD":
            continue
        stream, record = m["stream"], m["record"]
        if stream == "deletions":
            entity = {"member": "members", "order": "orders", "product": "products"}
            held.pop((entity[record["entity"]], record["key"]), None)
        elif stream == "member_tags":
            held[(stream, f"{record['email']} {record['tag_key']}")] = record["active"]
        else:
            held[(stream, record[keys[stream]])] = record
    return held


def test_each_account_is_recomputed_once_and_each_address_validated_once(
        mapper_config, monkeypatch):
    computed: list[str] = []
    original = flush.account_candidates
    monkeypatch.setattr(flush, "account_candidates",
                        lambda division, account_id, *a: computed.append(account_id)
                        or original(division, account_id, *a))
    validated: list[str] = []
    validate = email_validator.validate_email
    monkeypatch.setattr(emails, "validate_email",
                        lambda raw, **kw: validated.append(raw) or validate(raw, **kw))

    out = run(mapper_config, tap_messages())

    assert {m["record"]["email"] for m in out
            if m["type"] == "RECORD" and m["stream"] == "members"} == {
        "jan.contact1@example.nl", "shared@example.nl", "jan.contact4@example.nl",
        "info@bakkerij5.nl", "info@bakkerij6.nl"}
    # Invoices, lines and a deleted contact dirty accounts already computed: recomputed at
    # the one flush that computes members, not at every STATE.
    assert sorted(computed) == sorted(guid(n) for n in range(1, 7))
    assert len(validated) == len(set(validated))


def test_outputs_are_sent_in_stream_order_once_per_key(mapper_config):
    out = [m for m in run(mapper_config, tap_messages()) if m["type"] == "RECORD"]

    order = ("tags", "members", "member_tags", "customers", "products", "orders", "deletions")
    streams = [m["stream"] for m in out]
    assert streams == sorted(streams, key=order.index)
    assert len(out) == len(audience(out))  # each key once: no interim value went out
    assert len([m for m in out if m["stream"] == "customers"]) == 5  # one per account


@pytest.mark.parametrize("survive", [3, 9, 17, 26, 36])
def test_kill_between_messages_then_rerun_ends_where_a_clean_run_ends(
        survive, mapper_config, tmp_path):
    messages = tap_messages()
    clean = run(fresh_store(mapper_config, "clean"), messages)
    assert len(clean) > 36  # every kill point below is mid-run

    writer = DyingWriter(survive)
    with pytest.raises(BrokenPipeError):
        run(mapper_config, messages, writer)
    # Meltano saved the last STATE that got through; the tap resends everything after it
    # (here: the whole input again, opened by the echo of that state).
    confirmed = [m["value"] for m in writer.messages if m["type"] == "STATE"]
    retry = run(mapper_config, ([state(confirmed[-1])] if confirmed else []) + messages)

    assert audience(writer.messages + retry) == audience(clean)
    final = [m["value"] for m in retry if m["type"] == "STATE"][-1]
    assert [m for m in run(mapper_config, [state(final), *messages])
            if m["type"] == "RECORD"] == []


def test_queued_ledger_writes_keep_their_order(tmp_path):
    """A forget of something recorded in the same (unwritten) batch, and a record after a
    forget, end as they would one statement at a time."""
    db = connect(tmp_path / "ledger.sqlite")
    ledger = OutputLedger(db)
    ledger.record("products", "p1", "h1", '{"id": "p1"}', None)
    ledger.forget("products", "p1")  # e.g. the item deleted in the flush that sent it
    ledger.forget("products", "p2")
    ledger.record("products", "p2", "h2", '{"id": "p2"}', None)  # re-created after its deletion
    ledger.record("member_tags", "a\nt", "h3", '{"email": "a"}', "a")
    ledger.forget_owner("member_tags", "a")  # the member deleted in the same batch
    ledger.save()
    db.commit()

    assert not ledger.was_emitted("products", "p1")
    assert ledger.payload("products", "p2") == {"id": "p2"}
    assert ledger.payloads_of_owner("member_tags", "a") == []
