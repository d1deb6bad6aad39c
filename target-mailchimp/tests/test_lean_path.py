"""The target's lean per-record path (issue 9): the audit trail's rows go straight to the
driver's executemany, text is cleaned only when it holds a control character, and plain streams
skip singer-sdk's per-record machinery. Each must store and send exactly what it did before.
"""

from __future__ import annotations

import datetime
import gc
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from singer_sdk import Target
from sqlalchemy.dialects import postgresql, sqlite
from target_mailchimp import values
from target_mailchimp.audience_memory import audience_members, audience_reads
from target_mailchimp.audit import (
    FAILED,
    OK,
    AuditEntry,
    AuditStore,
    member_writes,
    syncing_stores,
    tag_segments,
    writes,
)
from target_mailchimp.audit_db import upsert
from target_mailchimp.sinks import MailchimpSink
from target_mailchimp.target import GC_THRESHOLD, TargetMailchimp
from target_mailchimp.testing import audit_rows, by_email, records, run_target, schema, stream
from target_mailchimp.written import written_records

AT = datetime.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def _no_fleet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.delenv("EXACTMC_TENANT", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))


def _stored(conn: sa.Connection, table: str, where: str) -> list[tuple[Any, ...]]:
    """Rows as the database holds them (no SQLAlchemy types on the way back)."""
    return [tuple(row) for row in conn.exec_driver_sql(
        f"SELECT * FROM {table} WHERE {where}")]  # noqa: S608 (test literals)


def test_audit_rows_are_stored_as_sqlalchemy_stored_them(database_url: str) -> None:
    audit = AuditStore(database_url, "raw", clock=lambda: AT)
    entries = [
        AuditEntry("members", "a@x.nl", "upsert", OK, response="ok"),
        AuditEntry("orders", "o1", "upsert", FAILED, reason="400 " + "r" * 600, method="PUT",
                   path="/ecommerce/stores/s/orders/o1",
                   payload={"id": "o1", "total": 1.5, "note": "é", "at": AT}),
        AuditEntry("members", "k" * 300, "update", OK, method="PUT", path="/x", payload={"a": 1}),
        AuditEntry("deletions", "member/b@x.nl", "delete", FAILED, reason=None),
    ]
    audit.record(entries)
    # The same rows as the SQLAlchemy Core insert made them before.
    with audit.engine.begin() as conn:
        conn.execute(writes.insert(), [{
            "run_id": "core", "at": AT, "stream": e.stream,
            "record_key": str(e.record_key)[:255], "operation": e.operation,
            "outcome": e.outcome, "reason": e.reason and (e.reason[:499] + "…"
                                                          if len(e.reason) > 500 else e.reason),
            "response": e.response,
            "method": e.method if e.outcome == FAILED else None,
            "path": e.path if e.outcome == FAILED else None,
            "payload": ('{"id": "o1", "total": 1.5, "note": "\\u00e9", '
                        '"at": "2026-03-04T05:06:07.890123+00:00"}'
                        if e.record_key == "o1" else None)} for e in entries])
        raw = _stored(conn, "audit_writes", "run_id = 'raw' ORDER BY id")
        core = _stored(conn, "audit_writes", "run_id = 'core' ORDER BY id")
    assert len(raw) == 4
    assert [row[2:] for row in raw] == [row[2:] for row in core]  # id, run_id aside
    read = audit.entries(run_id="raw")
    assert read[1]["payload"] and read[1]["reason"].endswith("…") and read[1]["method"] == "PUT"
    assert read[2]["payload"] is None and read[2]["method"] is None  # ok rows keep none
    assert len(read[2]["record_key"]) == 255
    audit.record([])  # nothing: no statement
    audit.close()


@pytest.mark.parametrize(("table", "first", "second"), [
    (written_records, {"scope": "L|s", "stream": "members", "record_key": '["b@x.nl"]',
                       "digest": "d1", "at": AT},
     {"scope": "L|s", "stream": "members", "record_key": '["b@x.nl"]', "digest": "d2",
      "at": AT + datetime.timedelta(days=1)}),
    (member_writes, {"list_id": "L", "email": "b@x.nl", "last_changed": "t1",
                     "pending_since": "p"},
     {"list_id": "L", "email": "b@x.nl", "last_changed": "t2", "pending_since": None}),
    (syncing_stores, {"store_id": "b", "since": AT}, {"store_id": "b", "since": AT}),
    (tag_segments, {"list_id": "L", "tag_key": "b", "segment_id": 3_000_000_001, "name": "é"},
     {"list_id": "L", "tag_key": "b", "segment_id": 3_000_000_002, "name": "n2"}),
    (audience_members, {"list_id": "L", "email": "b@x.nl", "status": "subscribed",
                        "last_changed": "t"},
     {"list_id": "L", "email": "b@x.nl", "status": "cleaned"}),  # a column left out: NULL
    (audience_reads, {"list_id": "b", "covered_from": AT, "cursor": AT},
     {"list_id": "b", "covered_from": AT, "cursor": AT + datetime.timedelta(hours=1)}),
])
def test_upserts_store_what_sqlalchemy_stored(database_url: str, table: sa.Table,
                                              first: dict[str, Any],
                                              second: dict[str, Any]) -> None:
    """Inserted, then updated on its key: the same stored values as SQLAlchemy's own
    INSERT ... ON CONFLICT DO UPDATE gave a twin row (key `b` there, `c` here)."""
    audit = AuditStore(database_url, "run")
    key_column = next(c.name for c in reversed(table.primary_key.columns))
    twin = {key_column: str(first[key_column]).replace("b", "c")}
    keys = [c.name for c in table.primary_key.columns]
    with audit.engine.begin() as conn:
        dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
        for row in (first, second):
            upsert(conn, table, [row, {**first, **twin}] if row is first else [row])
            statement = dialect.insert(table)
            conn.execute(statement.on_conflict_do_update(index_elements=keys, set_={
                c.name: statement.excluded[c.name] for c in table.columns
                if c.name not in keys}), [{**row, **{key_column: f"core-{row[key_column]}"}}])
        ours = _stored(conn, table.name, f"{key_column} = '{second[key_column]}'")
        core = _stored(conn, table.name, f"{key_column} = 'core-{second[key_column]}'")
        assert len(_stored(conn, table.name, "1 = 1")) == 3  # ours, its twin, core's
    position = [c.name for c in table.columns].index(key_column)
    strip = lambda rows: [row[:position] + row[position + 1:] for row in rows]  # noqa: E731
    assert strip(ours) == strip(core) and len(ours) == 1
    audit.close()


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@pytest.mark.parametrize("text", [
    "plain", "", "  spaced  ", "é ü ß", "tab\there", "line\nbreak\r\n", "\x00nul", "del\x7f",
    "nel\x85c1", "\u2028line separator kept", "\ud800lone", "\x0bvt\x0cff", "emoji 🎉",
    "\ttrimmed\n", "a\u00a0nbsp",
])
def test_clean_text_is_what_the_two_patterns_made(text: str) -> None:
    def before(value: str, keep_breaks: bool) -> str:  # the code as it was
        if keep_breaks:
            return values._CONTROLS_ALL.sub("", value)
        return values._CONTROLS.sub("", values._BREAKS.sub(" ", value.strip("\t\n\r\x0b\x0c")))

    for keep_breaks in (False, True):
        assert values.clean_text(text, keep_breaks=keep_breaks) == before(text, keep_breaks)
    body = {"email_address": "\x00id", "merge_fields": {"FNAME": text, "N": 1},
            "lines": [{"description": text, "product_id": text}]}
    assert values.clean_strings(body) == {
        "email_address": "\x00id", "merge_fields": {"FNAME": before(text, False), "N": 1},
        "lines": [{"description": before(text, True), "product_id": text}]}


def test_plain_streams_skip_the_sdk_record_path_with_the_same_outcome(
        mailchimp_sandbox: Any, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    sdk_path: list[str] = []
    original = Target._process_record_message

    def spy(self: TargetMailchimp, message: dict[str, Any]) -> None:
        sdk_path.append(message["stream"])
        original(self, message)

    monkeypatch.setattr(Target, "_process_record_message", spy)
    seen: list[dict[str, Any]] = []
    write = MailchimpSink._write_changed

    def spy_write(sink: MailchimpSink, written: Any, rows: list[dict[str, Any]]) -> None:
        seen.extend(rows)
        write(sink, written, rows)

    monkeypatch.setattr(MailchimpSink, "_write_changed", spy_write)
    caplog.set_level("INFO")
    run_target({**config, "unknown_streams": "ignore"}, [
        *stream("members", [{"email": "a@example.com", "source_updated_at": "2024-01-01",
                             "_sdc_extracted_at": "2024-01-02T00:00:00Z"},
                            {"email": "b@example.com"}]),
        {"type": "SCHEMA", "stream": "other", "key_properties": [],
         "schema": {"type": "object", "properties": {"x": {"type": "string"}}}},
        *records("other", [{"x": "1"}]),
    ])
    assert sdk_path == ["other"]  # only the stream our sinks do not take
    assert gc.get_threshold()[0] == GC_THRESHOLD  # young collections far less often
    assert set(by_email(mailchimp_sandbox)) == {"a@example.com", "b@example.com"}
    assert all("_sdc_extracted_at" not in row for row in seen)  # as the SDK removed it
    assert '"metric":"record_count","value":2,"tags":{"stream":"members"' in caplog.text
    assert {row["record_key"] for row in audit_rows(config)} >= {"a@example.com",
                                                                 "b@example.com"}


def test_a_record_without_its_key_still_stops_the_run(config: dict[str, Any]) -> None:
    # As singer-sdk did: a record missing a key property is a broken tap, not one bad record.
    with pytest.raises(Exception, match="key_properties"):
        run_target(config, [schema("members"), *records("members", [{"opt_out": False}])])


@pytest.mark.parametrize("values", [
    ["a@example.com"], ["a@example.com", "T1"], ["é@ü.de"], ['quo"te'], ["back\\slash"],
    ["tab\tx"], ["del\x7f"], ["\u2028"], ["\ud800"], [12, "x"], ["🎉"],
])
def test_record_keys_are_the_json_they_were(values: list[Any]) -> None:
    import json

    from target_mailchimp.written import record_key

    record = {f"k{i}": value for i, value in enumerate(values)}
    assert record_key(record, list(record)) == json.dumps([str(v) for v in values],
                                                           ensure_ascii=False)


@pytest.mark.parametrize("values", [
    [None], [""], ["a@example.com", None], ["", "T1"], [], [0], [0, "x"], ["A@Example.COM"],
    ["A@X.nl", "T1"], [12.5], ['Quo"te', "\t"],
])
def test_record_and_audit_keys_of_any_values_are_as_before(values: list[Any]) -> None:
    # Issue 9 made both one loop per record; the texts they give must not change (stored keys).
    import json

    from target_mailchimp.written import audit_key, record_key

    record = {f"k{i}": value for i, value in enumerate(values)}
    names = list(record)
    full = bool(names) and all(value not in (None, "") for value in values)
    assert record_key(record, names) == (
        json.dumps([str(v) for v in values], ensure_ascii=False) if full else None)
    assert audit_key(record, names) == "/".join(str(v) for v in values).lower()


@pytest.mark.parametrize("dated", [
    {"at": "2024-03-01T10:00:00Z", "day": "2024-03-01"},
    {"at": "2024-03-01T10:00:00+00:00", "day": "2024-3-1"},
    {"at": "2024-03-01 10:00:00.5", "day": None},
    {"at": "soon", "day": 20240301},
    {"at": None},
    {},
])
def test_fingerprints_read_dates_as_the_sdk_parsed_them(dated: dict[str, Any]) -> None:
    import hashlib
    import json
    from decimal import Decimal

    from target_mailchimp.client import json_default
    from target_mailchimp.written import fingerprint

    record = {"email": "a@example.com", "price": Decimal("1.50"), "note": "€", **dated}
    kinds = {"at": "date-time", "day": "date"}

    def parsed(value: Any, kind: str) -> Any:  # as the SDK had parsed it
        try:
            return (datetime.date.fromisoformat(value) if kind == "date"
                    else datetime.datetime.fromisoformat(value))
        except (TypeError, ValueError):
            return value

    as_sdk = {**record, **{k: parsed(record[k], kind) for k, kind in kinds.items()
                           if k in record}}
    before = hashlib.sha256(json.dumps(as_sdk, sort_keys=True, separators=(",", ":"),
                                       default=json_default).encode()).hexdigest()
    assert fingerprint(record, kinds) == before
    assert record["price"] == Decimal("1.50") and record.get("at") == dated.get("at")
