"""Issue 9 (the target's CPU): record fingerprints and request bodies encoded by msgspec.

Fingerprints: new digests are of msgspec's sorted encoding, marked so they are told apart from
the earlier json.dumps form; a digest remembered in the earlier form still matches its record
(no re-send after an upgrade) and is rewritten in the new form, so the slow form is computed
once per key, never on a first sync."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from target_mailchimp import sinks as sinks_module
from target_mailchimp import written as written_module
from target_mailchimp.audit import AuditStore
from target_mailchimp.client import dumpb
from target_mailchimp.operations import Write, batch_payload
from target_mailchimp.testing import base_config, run_target, stream
from target_mailchimp.written import (
    FAST_MARK,
    WrittenRecords,
    digest,
    fingerprint,
    written_records,
)

RECORD = {"email": "a@example.com", "source_updated_at": "2024-03-01T10:00:00Z",
          "merge_fields": {"FNAME": "Zoë", "ADDRESS": {"city": "Düsseldorf", "zip": "1"}},
          "price": Decimal("1.50"), "vip": True, "note": None}
DATES = {"source_updated_at": "date-time"}


def stored(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(written_records.c.record_key,
                                           written_records.c.digest)).all())


def test_digests_are_stable_marked_and_tell_records_apart() -> None:
    assert digest(RECORD) == digest(dict(reversed(list(RECORD.items()))))  # key order
    assert digest(RECORD).startswith(FAST_MARK) and len(digest(RECORD)) == 33
    assert not fingerprint(RECORD, DATES).startswith(FAST_MARK)  # the earlier form
    for changed in ({"vip": False}, {"price": Decimal("1.6")}, {"note": ""},
                    {"merge_fields": {"FNAME": "Zoe", "ADDRESS": {"city": "Düsseldorf",
                                                                  "zip": "1"}}}):
        assert digest({**RECORD, **changed}) != digest(RECORD)


def test_a_digest_of_the_earlier_form_still_matches_and_is_upgraded(database_url: str) -> None:
    audit = AuditStore(database_url, "run-1")
    written = WrittenRecords(audit.engine, "list/store", "run-1")
    other = {**RECORD, "email": "b@example.com"}
    written.remember("members", {'["a@example.com"]': fingerprint(RECORD, DATES),
                                 '["b@example.com"]': fingerprint(other, DATES)})
    records = {'["a@example.com"]': RECORD, '["b@example.com"]': {**other, "vip": False}}
    same = written.unchanged("members", {key: digest(r) for key, r in records.items()},
                             legacy=lambda key: fingerprint(records[key], DATES))
    assert same == {'["a@example.com"]'}  # b changed: not the same under either form
    after = stored(audit.engine)
    assert after['["a@example.com"]'] == digest(RECORD)  # upgraded to the fast form
    assert after['["b@example.com"]'] == fingerprint(other, DATES)  # b is written, then kept
    # Next time the fast form alone decides: no legacy digest is computed.
    assert written.unchanged("members", {'["a@example.com"]': digest(RECORD)},
                             legacy=lambda key: pytest.fail("legacy form computed")) == {
        '["a@example.com"]'}
    audit.close()


def test_a_first_sync_never_computes_the_earlier_form_and_remembers_the_fast_one(
        mailchimp_sandbox: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    legacy_calls: list[str] = []
    real = written_module.fingerprint
    counting = lambda *a, **k: legacy_calls.append("x") or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(written_module, "fingerprint", counting)
    monkeypatch.setattr(sinks_module, "fingerprint", counting)
    config = base_config(mailchimp_sandbox, tmp_path)
    members = [{"email": f"m{i}@example.com", "merge_fields": {"FNAME": "Zoë"}}
               for i in range(3)]
    run_target(config, stream("members", members)
               + stream("products", [{"id": "P1", "title": "W", "price": 1.5}]))
    audit = AuditStore(config["audit_store_url"], "check")
    digests = stored(audit.engine)
    audit.close()
    assert len(digests) == 4 and all(d.startswith(FAST_MARK) for d in digests.values())
    assert legacy_calls == []


def test_request_bodies_keep_their_values_numbers_and_text() -> None:
    body = {"title": "Zoë \"quoted\"\n\x7f", "price": Decimal("12.50"), "big": Decimal("1E+2"),
            "qty": 3, "ok": True, "none": None, "lines": [{"price": Decimal("0.1")}]}
    text = dumpb(body).decode()
    assert json.loads(text) == {**body, "price": 12.5, "big": 100.0, "lines": [{"price": 0.1}]}
    assert '"price":12.50' in text.replace(" ", "")  # a number, not a string
    writes = {"op0": Write("products", "P1", "upsert", "PUT", "ecommerce/stores/s/products/P1",
                           body, params={"fields": "id"}),
              "op1": Write("members", "a", "archive", "DELETE", "/lists/l/members/x")}
    payload = json.loads(batch_payload(writes).decode("utf-8"))
    first, second = payload["operations"]
    assert first["path"] == "/ecommerce/stores/s/products/P1" and first["operation_id"] == "op0"
    assert json.loads(first["body"]) == json.loads(text) and first["params"] == {"fields": "id"}
    assert second == {"method": "DELETE", "path": "/lists/l/members/x", "operation_id": "op1"}


def _archive(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_batch_results_are_read_as_before() -> None:
    """The /batches result archive, decoded by msgspec: answers as json.loads read them,
    204s as None, text that is not JSON kept (short) as unreadable, a cut-off file raises
    (ValueError: the download is retried)."""
    from target_mailchimp.answer_fields import tree
    from target_mailchimp.operations import Unreadable, _read_results

    entries = [
        {"operation_id": "op0", "status_code": 200,
         "response": json.dumps({"id": "x", "status": "subscribed", "n": 1.5, "big": 2**70,
                                 "name": "Zoë", "drop": {"deep": 1}})},
        {"operation_id": "op1", "status_code": 204, "response": ""},
        {"operation_id": "op2", "status_code": 200, "response": "<html>" + "x" * 300},
        {"operation_id": "op3", "status_code": 400, "response": json.dumps(
            {"title": "Invalid Resource", "detail": "é"})},
    ]
    data = json.dumps(entries).encode()
    outcomes = _read_results(_archive({"a.json": data}),
                             {"op0": tree("id,status,n,big,name")})
    assert outcomes["op0"] == (200, {"id": "x", "status": "subscribed", "n": 1.5,
                                     "big": 2**70, "name": "Zoë"})
    assert outcomes["op1"] == (204, None)
    assert isinstance(outcomes["op2"][1], Unreadable) and len(outcomes["op2"][1]) == 200
    assert outcomes["op3"] == (400, {"title": "Invalid Resource", "detail": "é"})
    with pytest.raises(ValueError):
        _read_results(_archive({"a.json": data[:-10]}))
    with pytest.raises(ValueError):
        _read_results(_archive({"a.json": b'{"not": "a list"}'}))


@pytest.mark.parametrize("answer", [
    {"id": "x", "status": "subscribed", "last_changed": "2026-01-01T00:00:00+00:00"},
    {"id": 12345678901234567890, "financial_status": "Zoë \"paid\"\n", "status": None},
    {"id": 1.5, "status": True, "merge_fields": {"A": 1}}, {"other": 1}, {}, None, [1],
])
def test_short_answers_are_the_text_json_dumps_wrote(answer: Any) -> None:
    from target_mailchimp.operations import short_answer

    picked = {k: answer[k] for k in ("id", "status", "financial_status", "last_changed")
              if isinstance(answer, dict) and k in answer}
    assert short_answer(201, answer) == (f"201 {json.dumps(picked)}" if picked else "201")
