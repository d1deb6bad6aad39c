"""The ledger's output hashes.

Issue 9, seventh pass: an output's hash is sha256 of msgspec's sorted encoding, with a prefix
(one cheap encode instead of the canonical `json.dumps`). Hashes stored by earlier versions
(the canonical text below) must still be recognised, or an upgrade would re-send every output
once: a stored old-form hash is compared in the old form and rewritten in the new one.
"""

from __future__ import annotations

import itertools
from typing import Any

from mapper_exact_mailchimp.flush import UNHASHED
from mapper_exact_mailchimp.ledger import (
    HASH_PREFIX,
    OutputLedger,
    canonical_json,
    content_hash,
    output_hash,
)
from mapper_exact_mailchimp.store import connect
from mapper_test_kit import account, contact, cost_center, invoice, line, opened_store

_namespaces = itertools.count(1)

# A member-like output with nesting, non-ASCII text, a float, a null and unsorted keys.
OUTPUT = {"status": "subscribed", "email_address": "Zoë@example.com",
          "merge_fields": {"LNAME": "Müller", "FNAME": "A"}, "tags": ["b", "a"],
          "amount": 12.5, "vip": True, "phone": None}


def test_canonical_json_is_sorted_ascii_with_default_separators() -> None:
    assert canonical_json(OUTPUT) == (
        '{"amount": 12.5, "email_address": "Zo\\u00eb@example.com", "merge_fields": '
        '{"FNAME": "A", "LNAME": "M\\u00fcller"}, "phone": null, "status": "subscribed", '
        '"tags": ["b", "a"], "vip": true}')


def test_content_hash_is_stable_across_versions() -> None:
    assert content_hash(OUTPUT) == HASH


# sha256 of the canonical text as the versions before issue 9 made it.
HASH = "c3b448e6474bfaec55777c614037134d30b49db23ec4047d3b611e1b4b03133b"


def test_new_hash_form_is_prefixed_and_ignores_key_order() -> None:
    assert output_hash(OUTPUT).startswith(HASH_PREFIX)
    assert output_hash(OUTPUT) == output_hash(dict(reversed(OUTPUT.items())))
    assert output_hash(OUTPUT) != output_hash({**OUTPUT, "amount": 12.25})
    # Pinned: a changed form would re-send every output once after an upgrade.
    assert output_hash(OUTPUT) == (
        "s1:a253bdc1a5f9a3c59d9c50f9949aeb4aced6e6d4fdbadaba484612ae4787279e")


def test_an_old_form_hash_still_matches_once_and_is_rewritten(database_url: str) -> None:
    db = connect(database_url, f"ledger_hash{next(_namespaces)}")
    ledger = OutputLedger(db)
    ledger.record("members", "zoe", HASH, "{}", None)  # as an earlier version stored it
    ledger.save()

    assert not ledger.is_unchanged("members", "zoe", output_hash({**OUTPUT, "vip": False}),
                                   lambda: content_hash({**OUTPUT, "vip": False}))
    assert ledger.is_unchanged("members", "zoe", output_hash(OUTPUT), lambda: HASH)
    ledger.save()
    (stored,) = db.execute("SELECT hash FROM emitted WHERE key='zoe'").fetchone()
    assert stored == output_hash(OUTPUT)

    def old_form_not_needed() -> str:
        raise AssertionError("a new-form hash is compared as it is")
    assert ledger.is_unchanged("members", "zoe", output_hash(OUTPUT), old_form_not_needed)
    db.rollback()
    db.close()


COMPANY = {
    "accounts": [account(1), account(2, Email="shop@example.nl")],
    "contacts": [contact(1, 1), contact(2, 1, Email="b@example.nl")],
    "cost_centers": [cost_center("100", "Sales")],
    "sales_invoices": [invoice(1, 1), invoice(2, 2)],
    "sales_invoice_lines": [line(1, 1), line(2, 2)],
}


def _hashed(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    skip = UNHASHED.get(stream, ())
    return {k: v for k, v in record.items() if k not in skip}


def test_an_upgraded_store_re_sends_nothing_and_keeps_little(pipeline, mapper_config) -> None:
    first = pipeline.run(COMPANY)
    sent = [(m["stream"], m["record"]) for m in first if m["type"] == "RECORD"]
    assert {stream for stream, _ in sent} >= {"members", "member_tags", "customers", "orders",
                                               "products", "tags"}
    with opened_store(mapper_config) as db:
        # The store as the version before the new form left it: every hash in the old form.
        db.executemany("UPDATE emitted SET hash=? WHERE hash=?", [
            (content_hash(_hashed(s, r)), output_hash(_hashed(s, r))) for s, r in sent])
        rows = db.execute("SELECT stream, hash, payload FROM emitted").fetchall()
        db.commit()
    assert len(rows) == len(sent)
    assert not [h for _, h, _ in rows if h.startswith(HASH_PREFIX)]
    # Payloads never read back are not kept; a member keeps only its source key.
    assert {p for s, _, p in rows if s in ("orders", "customers", "tags")} == {""}
    assert all(p.startswith('{"source_key":') for s, _, p in rows if s == "members")

    again = pipeline.run(COMPANY)

    assert again.records() == []
    with opened_store(mapper_config) as db:
        hashes = [h for (h,) in db.execute("SELECT hash FROM emitted")]
    assert hashes and all(h.startswith(HASH_PREFIX) for h in hashes)
