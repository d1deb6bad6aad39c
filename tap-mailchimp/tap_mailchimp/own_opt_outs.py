"""Opt-outs the forward flow made itself, recognised in target-mailchimp's audit trail.

Why the audit trail (setting `forward_audit_store_url`; empty: the URL target-mailchimp's own
empty `audit_store_url` resolves, so a fleet's one database needs no setting): the forward flow
unsubscribes people for reasons Exact already holds (a blocked account, an inactive customer with
`inactive_handling: opt_out`, IsMailingExcluded). Writing those back as `IsMailingExcluded` is
a loop. Mailchimp's member answer does not say who unsubscribed someone (the reference
documents no `unsubscribe_reason` for API unsubscribes), and list webhooks can be registered
without API-sourced events (`sources.api: false`, what we document) but polling sees every
unsubscribe. target-mailchimp records each write with Mailchimp's answer (`status`,
`last_changed`) and names its opt-out writes (`opt_out`, or a `create` answered
`unsubscribed`), so the trail answers "did our write leave this member unsubscribed?".

The rule, per member and unsubscribe moment M (the member's `last_changed`, or a webhook's
`fired_at`): the member's last change must be ours, i.e. a write answered with `last_changed`
M, or a side effect target-mailchimp confirmed as its own (tagging and e-commerce customers
change members without answering for them; its `member_writes` table keeps that moment). Then
walk back through our writes up to M, newest first, while each answer said `unsubscribed`: an
opt-out of ours among them means the unsubscribe is ours. A write of ours answered with
another status (or a last change not ours) means someone else unsubscribed the person: that
goes back to Exact. Side effects never change a status, so they need no place in the walk.
Cleaned addresses are never ours.

Unconfirmed, and not relied on: whether Mailchimp moves `last_changed` on a no-op PUT (either
way the chain above holds), and whether a webhook's `fired_at` equals `last_changed` to the
second (the sandbox's does; when it differs the event is sent back, which is safe: Exact then
just holds an exclusion it had a reason for anyway).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from secret_store.database import default_sqlite_path, engine_for, store_exists, store_url

from tap_mailchimp.inbox import utc_iso

LOGGER = logging.getLogger("tap_mailchimp.own_opt_outs")
CHUNK = 500  # addresses per IN (...) query and per buffered batch of records
# target-mailchimp's audit database: its default file and its namespace (audit_db.py there).
FORWARD_PLUGIN, FORWARD_FILE, FORWARD_COMPONENT = "target-mailchimp", "audit.sqlite", \
    "target_mailchimp"


def forward_audit_url(setting: str | None) -> str:
    """The URL target-mailchimp's audit trail has when its `audit_store_url` is `setting`."""
    return store_url(setting or None, default_sqlite_path(FORWARD_PLUGIN, FORWARD_FILE))

_member_writes = sa.Table(  # target-mailchimp's memory of each member's last own change
    "member_writes", sa.MetaData(),
    sa.Column("list_id", sa.String), sa.Column("email", sa.String),
    sa.Column("last_changed", sa.String),
)
_writes = sa.Table(  # the columns of target-mailchimp's audit_writes this side reads
    "audit_writes", sa.MetaData(),
    sa.Column("id", sa.Integer), sa.Column("stream", sa.String), sa.Column("record_key",
                                                                          sa.String),
    sa.Column("operation", sa.String), sa.Column("outcome", sa.String),
    sa.Column("response", sa.Text), sa.Column("payload", sa.Text),
    sa.Column("replay_outcome", sa.String), sa.Column("replay_response", sa.Text),
)


@dataclass(frozen=True)
class OurWrite:
    opt_out: bool  # this write asked for `unsubscribed`
    status: str | None  # what Mailchimp answered
    last_changed: str | None  # normalised with utc_iso


def _answer(text: str | None) -> dict[str, Any]:
    """target-mailchimp's short answer, `200 {"status": ..., "last_changed": ...}`."""
    _, _, body = (text or "").partition(" ")
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _moment(value: Any) -> str | None:
    try:
        return utc_iso(str(value)) if value else None
    except ValueError:
        return None


def _write(row: Any) -> OurWrite | None:
    if row.outcome == "ok":
        answer = _answer(row.response)
        opt_out = row.operation == "opt_out" or (
            row.operation == "create" and answer.get("status") == "unsubscribed")
    elif row.replay_outcome == "ok":  # a failed write sent again later (heal or replay)
        answer = _answer(row.replay_response)
        try:
            payload = json.loads(row.payload or "{}")
        except ValueError:
            payload = {}
        opt_out = isinstance(payload, dict) and payload.get("status") == "unsubscribed"
    else:
        return None
    return OurWrite(opt_out, answer.get("status"), _moment(answer.get("last_changed")))


def made_by_us(history: list[OurWrite], moment: str, last_ours: str | None = None) -> bool:
    """The rule of the module docstring; `history` in the order Mailchimp changed the member,
    `last_ours` the member's last change target-mailchimp remembers as its own (side effects
    included)."""
    if moment != last_ours and not any(w.last_changed == moment for w in history):
        return False  # someone changed the member after our last write
    for write in reversed([w for w in history if (w.last_changed or "") <= moment]):
        if write.status != "unsubscribed":
            return False
        if write.opt_out:
            return True
    return False


class ForwardTrail:
    """Read-only view of target-mailchimp's audit trail. A trail not made yet hides nothing."""

    def __init__(self, url: str | None) -> None:
        """`url`: the `forward_audit_store_url` setting; None or empty resolves the default."""
        url = forward_audit_url(url)
        self._engine: sa.Engine | None = None
        self._has_member_writes = False
        if not store_exists(url, FORWARD_COMPONENT):
            return  # never make the other plugin's file or schema
        engine = engine_for(url, FORWARD_COMPONENT)
        inspector = sa.inspect(engine)
        if inspector.has_table("audit_writes"):
            self._engine = engine
            self._has_member_writes = inspector.has_table("member_writes")

    def last_own_changes(self, list_id: str, emails: Iterable[str]) -> dict[str, str]:
        """Per member, the last change target-mailchimp confirmed as its own (normalised)."""
        if self._engine is None or not self._has_member_writes:
            return {}
        wanted, found = sorted(set(emails)), {}
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                rows = conn.execute(sa.select(_member_writes).where(
                    _member_writes.c.list_id == list_id,
                    _member_writes.c.email.in_(wanted[start:start + CHUNK])))
                for row in rows:
                    if (moment := _moment(row.last_changed)) is not None:
                        found[row.email] = moment
        return found

    def histories(self, emails: Iterable[str]) -> dict[str, list[OurWrite]]:
        if self._engine is None:
            return {}
        wanted = sorted(set(emails))
        found: dict[str, list[OurWrite]] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                query = (sa.select(_writes).where(_writes.c.stream == "members",
                                                  _writes.c.record_key.in_(
                                                      wanted[start:start + CHUNK]))
                         .order_by(_writes.c.id))
                for row in conn.execute(query):
                    write = _write(row)
                    if write is not None and write.last_changed:
                        found.setdefault(row.record_key, []).append(write)
        for writes in found.values():  # replays are later than their row's id says
            writes.sort(key=lambda w: w.last_changed or "")
        return found

    def without_ours(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The exclusion records whose unsubscribe was not made by our own writes."""
        buffer: list[dict[str, Any]] = []
        left_out = 0

        def flush() -> Iterator[dict[str, Any]]:
            nonlocal left_out
            emails = [r["email"] for r in buffer if r["status"] == "unsubscribed"]
            histories = self.histories(emails)
            last_ours = self.last_own_changes(buffer[0]["list_id"], emails) if buffer else {}
            for record in buffer:
                history = histories.get(record["email"])
                if history and record["status"] == "unsubscribed" and made_by_us(
                        history, record["changed_at"], last_ours.get(record["email"])):
                    left_out += 1
                    continue
                yield record
            buffer.clear()

        for record in records:
            buffer.append(record)
            if len(buffer) >= CHUNK:
                yield from flush()
        yield from flush()
        if left_out:
            LOGGER.info("Left out %d unsubscribe(s) made by the forward flow's own opt-outs "
                        "(target-mailchimp's audit trail): Exact already holds their reason.",
                        left_out)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


