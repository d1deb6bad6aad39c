"""What the audience already holds from us: one fingerprint per record key, of the last record
whose writes all went through.

Why: a record identical to one already written needs no call. Without this, a rerun after a
kill, or the same job started twice (`meltano run --force` while the first still writes: the
second reads the state the first has not saved yet and syncs from it), writes everything
again. With it, only what changed is sent.

Safe because every write is an upsert of the record's whole content: an identical record would
only repeat it. A batch in which any write failed is not remembered (healing and the next run
see it whole), a deletion forgets its key (a record sent again after it is written again), and
the scope is the audience and store (another list_id or store_id starts afresh).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from target_mailchimp.audit import FAILED, QUERY_CHUNK, metadata, writes
from target_mailchimp.audit_db import chunks, upsert
from target_mailchimp.client import json_default

written_records = sa.Table(
    "written_records",
    metadata,
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("stream", sa.String, primary_key=True),
    sa.Column("record_key", sa.String, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Deleting an entity forgets these streams' records of its key (member tags: by email).
FORGOTTEN_BY_DELETION = {"member": ("members", "member_tags"), "order": ("orders",),
                         "customer": ("customers",), "product": ("products",)}


# json.dumps with options builds an encoder per call; these are made once (same text).
_KEY = json.JSONEncoder(ensure_ascii=False)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=json_default)
# Issue 9: the fingerprint of every record was a twelfth of the target's CPU in json.dumps;
# msgspec encodes the same record (keys sorted, Decimals as their text) ~5x faster. Its
# digests carry FAST_MARK; digests without it are of the earlier json.dumps form (`fingerprint`).
_FAST = msgspec.json.Encoder(order="sorted")
FAST_MARK = "~"


def record_key(record: dict[str, Any], key_properties: Sequence[str]) -> str | None:
    """The record's key as JSON (`["a@x.nl"]`, `["a@x.nl", "T1"]`); None without a full key."""
    texts = []
    plain = True  # what json.dumps leaves as it is between its quotes: no encoder needed
    for name in key_properties:  # one loop, no intermediate lists (issue 9: per record)
        value = record.get(name)
        if value is None or value == "":
            return None
        text = value if type(value) is str else str(value)
        plain = plain and text.isprintable() and '"' not in text and "\\" not in text
        texts.append(text)
    if not texts:
        return None
    if plain:
        return '["' + '", "'.join(texts) + '"]'
    return _KEY.encode(texts)


def audit_key(record: dict[str, Any], key_properties: Sequence[str]) -> str:
    """The key the writers give the audit trail: the key values joined by `/`, lower-cased."""
    if len(key_properties) == 1:  # nearly every stream: no generator per record
        value = record.get(key_properties[0])
        return (value if type(value) is str else str(value)).lower()
    return "/".join([str(record.get(name)) for name in key_properties]).lower()


def digest(record: dict[str, Any]) -> str:
    """The record's fingerprint: FAST_MARK and the 128-bit BLAKE2b of its sorted msgspec
    encoding (33 characters: plenty to tell a change, half the earlier form's bytes in every
    row and key of `written_records`). Dates are hashed as the text they came as; a type
    msgspec cannot encode falls back to the earlier form."""
    try:
        encoded = _FAST.encode(record)
    except (TypeError, msgspec.EncodeError):
        return fingerprint(record)
    return FAST_MARK + hashlib.blake2b(encoded, digest_size=16).hexdigest()


def fingerprint(record: dict[str, Any], dates: Mapping[str, str] | None = None) -> str:
    """The earlier form of a fingerprint (digests remembered before issue 9): SHA-256 of
    the record's canonical JSON. `dates` (field -> "date-time" or "date"): fields read as the
    SDK once parsed them, so digests remembered before the target left dates as text still
    match (else an upgrade would send everything again)."""
    if dates:
        as_parsed = {name: text for name, kind in dates.items()
                     if (text := _as_sdk_parsed(record.get(name), kind)) is not None}
        if as_parsed:
            record = {**record, **as_parsed}
    canonical = _CANONICAL.encode(record)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _as_sdk_parsed(value: Any, kind: str) -> str | None:
    """The text the SDK's parsed value was written as (its isoformat), if it differs."""
    if not isinstance(value, str):
        return None
    try:
        if kind == "date":
            text = datetime.date.fromisoformat(value).isoformat()
        else:
            text = datetime.datetime.fromisoformat(value).isoformat()
    except ValueError:
        return None
    return None if text == value else text


class WrittenRecords:
    def __init__(self, engine: sa.Engine, scope: str, run_id: str) -> None:
        self.engine = engine
        self.scope = scope
        self.run_id = run_id

    def unchanged(self, stream: str, digests: dict[str, str],
                  legacy: Callable[[str], str] | None = None) -> set[str]:
        """The keys whose record is identical to the last one written. `digests` are of the
        fast form (`digest`); a key remembered in the earlier form is compared by
        `legacy(key)` (its record's `fingerprint`) and, if the same, rewritten in the fast
        form: the earlier form is computed once per key, and only where one is stored."""
        same: set[str] = set()
        upgraded: dict[str, str] = {}
        keys = list(digests)
        with self.engine.connect() as conn:
            for start in range(0, len(keys), QUERY_CHUNK):
                rows = conn.execute(
                    sa.select(written_records.c.record_key, written_records.c.digest).where(
                        written_records.c.scope == self.scope,
                        written_records.c.stream == stream,
                        written_records.c.record_key.in_(keys[start:start + QUERY_CHUNK])))
                for key, stored in rows:
                    if digests.get(key) == stored:
                        same.add(key)
                    elif (legacy is not None and not stored.startswith(FAST_MARK)
                          and legacy(key) == stored):
                        same.add(key)
                        upgraded[key] = digests[key]
        self.remember(stream, upgraded)
        return same

    def last_audit_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(writes.c.id))).scalar() or 0)

    def failed_since(self, stream: str, audit_id: int) -> set[str]:
        """Audit keys (lower-cased) of `stream`'s writes this run refused after `audit_id`."""
        query = sa.select(writes.c.record_key).where(
            writes.c.id > audit_id, writes.c.run_id == self.run_id, writes.c.stream == stream,
            writes.c.outcome == FAILED)
        with self.engine.connect() as conn:
            return {str(key).lower() for key in conn.execute(query).scalars()}

    def remember(self, stream: str, digests: dict[str, str]) -> None:
        if not digests:
            return
        at = datetime.datetime.now(datetime.timezone.utc)
        with self.engine.begin() as conn:
            for chunk in chunks(digests, QUERY_CHUNK):
                upsert(conn, written_records, [
                    {"scope": self.scope, "stream": stream, "record_key": key,
                     "digest": digests[key], "at": at} for key in chunk])

    def forget_deleted(self, deletions: Iterable[tuple[str, str]]) -> None:
        """Forget what was written for each deleted (entity, key)."""
        with self.engine.begin() as conn:
            for entity, key in deletions:
                prefix = json.dumps([key], ensure_ascii=False)[:-1]  # '["a@x.nl"' ...
                for stream in FORGOTTEN_BY_DELETION.get(entity, ()):
                    conn.execute(written_records.delete().where(
                        written_records.c.scope == self.scope,
                        written_records.c.stream == stream,
                        sa.or_(written_records.c.record_key == prefix + "]",
                               written_records.c.record_key.startswith(prefix + ",",
                                                                       autoescape=True))))
