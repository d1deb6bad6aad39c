"""Healing: each run sends the earlier failed writes again, within bounds, and reports.

Policy (settings `heal_max_attempts`, `heal_backoff_minutes`, `fail_on_unhealed_writes`):
- a retriable failed write is sent again once `last try + backoff * 2^attempts` has passed,
  at most `heal_max_attempts` times; then it is *given up* (still visible, `replay` by hand);
- permanent refusals (refusals.py) and bad input are never sent again automatically;
- a write for which a later row exists (newer source data, or a deletion) is settled as
  skipped without a call: the newer data wins;
- dependencies first: products and customers before the orders that name them, members before
  their tags; an order whose product still waits for its own retry waits too (no attempt
  spent on a refusal that is certain).
"""

from __future__ import annotations

import datetime
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from target_mailchimp.audit import OK, SKIPPED
from target_mailchimp.client import MailchimpError
from target_mailchimp.own_writes import member_side_effects
from target_mailchimp.refusals import (
    BAD_INPUT,
    PERMANENT,
    RETRIABLE,
    classify,
    last_error,
    public_reason,
)
from target_mailchimp.replay import Attempt, Replayer
from target_mailchimp.run_context import RunContext

STREAM_ORDER = ("members", "tags", "products", "customers", "orders", "member_tags", "deletions")
FAIL_ON = ("never", "exhausted", "pending", "any")
UNHEALED_EXIT_STATUS = 3
SUPERSEDED = "superseded by a later write for this key"
ECOMMERCE_STREAMS = ("customers", "products", "orders")


class UnhealedWrites(SystemExit):
    """Ends a run that worked but leaves writes failed, as `fail_on_unhealed_writes` asks."""


@dataclass(frozen=True)
class HealPolicy:
    max_attempts: int = 5
    backoff: datetime.timedelta = datetime.timedelta(minutes=10)
    fail_on: str = "exhausted"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HealPolicy:
        fail_on = str(config.get("fail_on_unhealed_writes") or "exhausted")
        if fail_on not in FAIL_ON:
            raise ValueError(f"fail_on_unhealed_writes must be one of {', '.join(FAIL_ON)}")
        attempts = config.get("heal_max_attempts")
        minutes = config.get("heal_backoff_minutes")
        return cls(max_attempts=max(0, int(5 if attempts is None else attempts)),
                   backoff=datetime.timedelta(minutes=max(0, int(10 if minutes is None
                                                                  else minutes))),
                   fail_on=fail_on)

    def next_attempt_at(self, row: dict[str, Any]) -> datetime.datetime:
        last_try = row["replayed_at"] or row["at"]
        return last_try + self.backoff * (2 ** min(int(row["attempts"]), 30))

    def exhausted(self, row: dict[str, Any]) -> bool:
        return int(row["attempts"]) >= self.max_attempts


@dataclass
class HealReport:
    """What this run healed and what is still failed, for the last log line and exit status."""

    healed: Counter[str] = field(default_factory=Counter)
    settled: int = 0  # stale or conflicting writes settled without sending
    refused_again: int = 0
    pending: Counter[str] = field(default_factory=Counter)
    gave_up: Counter[str] = field(default_factory=Counter)
    gave_up_now: int = 0
    permanent: Counter[str] = field(default_factory=Counter)
    permanent_now: int = 0
    bad_input: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    next_due: datetime.datetime | None = None
    interrupted: str | None = None

    def exit_status(self, policy: HealPolicy) -> int:
        fail = {
            "never": False,
            # One red run per write given up: a scheduler alerts once, not forever.
            "exhausted": self.gave_up_now > 0,
            "pending": bool(self.pending or self.gave_up),
            "any": bool(self.pending or self.gave_up or self.permanent_now),
        }[policy.fail_on]
        return UNHEALED_EXIT_STATUS if fail else 0

    def line(self, policy: HealPolicy) -> str:
        """One line, counts by stream and the top reasons; never an address or a secret."""
        healed = (f"{sum(self.healed.values())} healed this run ({_by_stream(self.healed)})"
                  if self.healed else "")
        unhealed = sum((self.pending + self.gave_up + self.permanent + self.bad_input).values())
        if not unhealed:
            return "Failed writes: none left" + (f"; {healed}." if healed else ".")
        parts = []
        if self.pending:
            due = f"; next attempt from {self.next_due:%Y-%m-%d %H:%M} UTC" if self.next_due \
                else ""
            parts.append(f"{sum(self.pending.values())} retriable pending "
                         f"({_by_stream(self.pending)}{due})")
        if self.gave_up:
            parts.append(f"{sum(self.gave_up.values())} given up after {policy.max_attempts} "
                         f"attempts ({_by_stream(self.gave_up)}; {self.gave_up_now} this run)")
        if self.permanent:
            parts.append(f"{sum(self.permanent.values())} permanent refusals "
                         f"({_by_stream(self.permanent)}; {self.permanent_now} this run)")
        if self.bad_input:
            parts.append(f"{sum(self.bad_input.values())} not replayable, fix at the source "
                         f"({_by_stream(self.bad_input)})")
        text = "Failed writes left: " + ", ".join(parts)
        if healed:
            text += f"; {healed}"
        if self.interrupted:
            text += f"; healing stopped early ({public_reason(self.interrupted)})"
        top = "; ".join(f"{reason} ×{count}" for reason, count in self.reasons.most_common(3))
        status = self.exit_status(policy)
        return (f"{text}. Top reasons: {top}. Exit status {status} "
                f"(fail_on_unhealed_writes={policy.fail_on}); details: the audit trail, "
                "`target-mailchimp-admin replay`.")


def _by_stream(counts: Counter[str]) -> str:
    return ", ".join(f"{stream} {count}" for stream, count in sorted(counts.items()))


def _stream_rank(stream: str) -> int:
    return STREAM_ORDER.index(stream) if stream in STREAM_ORDER else len(STREAM_ORDER)


class Healer:
    """One healing pass over the audit trail (automatic, or by hand with `manual=True`)."""

    def __init__(self, context: RunContext, policy: HealPolicy, *, manual: bool = False,
                 include_permanent: bool = False,
                 on_result: Callable[[dict[str, Any], Attempt], None] | None = None) -> None:
        self.context = context
        self.audit = context.audit
        self.policy = policy
        self.manual = manual
        self.include_permanent = include_permanent
        self.on_result = on_result
        self.replayer = Replayer(context)
        self.report = HealReport()
        self._attempted: set[int] = set()

    def run(self) -> HealReport:
        rows = list(self.audit.failed_unreplayed())
        if rows:  # a clean trail costs no API call
            try:
                self._heal([row for row in rows if not self._settle_if_superseded(row)])
            except MailchimpError as exc:  # e.g. reading members back: the rest waits
                self.report.interrupted = str(exc)
        self._count_left()
        return self.report

    # --- one pass ----------------------------------------------------------------------------

    def _settle_if_superseded(self, row: dict[str, Any]) -> bool:
        if not self.audit.superseded(row):
            return False
        self._record(row, Attempt(SKIPPED, SUPERSEDED))
        return True

    def _heal(self, rows: list[dict[str, Any]]) -> None:
        now = self.audit.clock()
        due = sorted((r for r in rows if self._due(r, now)),
                     key=lambda r: (_stream_rank(r["stream"]), r["id"]))
        open_rows = {r["id"]: r for r in rows}
        for stream in sorted({r["stream"] for r in due}, key=_stream_rank):
            waiting_on = self._still_to_heal(open_rows.values())
            # An order whose product/customer (or a tag whose member) is itself still failed
            # and will be retried waits: sending it now would only be refused for want of it.
            group = [r for r in due if r["stream"] == stream
                     and not _dependencies(r) & waiting_on]
            results = self._send(stream, group)
            for row, attempt in results:
                self._record(row, attempt)
                if attempt.outcome in (OK, SKIPPED):
                    open_rows.pop(row["id"], None)
            outage = next((a for _, a in results if a.outage), None)
            if outage:
                # Mailchimp is down or refuses our credentials: the rest waits for a later run.
                self.report.interrupted = outage.message
                return

    def _due(self, row: dict[str, Any], now: datetime.datetime) -> bool:
        kind = classify(row)
        if kind == BAD_INPUT:
            return False
        if kind == PERMANENT:
            return self.manual and self.include_permanent
        if self.manual:
            return True  # by hand: now, whatever the backoff and the attempts spent
        return not self.policy.exhausted(row) and self.policy.next_attempt_at(row) <= now

    def _still_to_heal(self, rows: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(r["stream"], str(r["record_key"])) for r in rows
                if classify(r) == RETRIABLE and not self.policy.exhausted(r)}

    def _send(self, stream: str, rows: list[dict[str, Any]]
              ) -> list[tuple[dict[str, Any], Attempt]]:
        if not rows:
            return []
        if stream in ECOMMERCE_STREAMS and self.context.config.get("store_id"):
            self.context.ensure_store()  # is_syncing, as for this run's own e-commerce writes
        outage = threading.Event()

        def attempt(row: dict[str, Any]) -> Attempt | None:
            if outage.is_set():
                return None  # Mailchimp is down: not tried, no attempt spent
            result = self.replayer.attempt(row)
            if result.outage:
                outage.set()
            return result

        with self._side_effects(stream, rows):
            attempts = self.context.client.map_parallel(attempt, rows)
        tried = [(row, a) for row, a in zip(rows, attempts, strict=True) if a is not None]
        self._attempted.update(row["id"] for row, _ in tried)
        return tried

    def _side_effects(self, stream: str, rows: list[dict[str, Any]]
                      ) -> AbstractContextManager[None]:
        """Customers and tags move members' last_changed: remembered as our own changes."""
        if stream == "member_tags":
            return member_side_effects(self.context,
                                       {str(r["record_key"]).split("/", 1)[0] for r in rows})
        if stream == "customers":
            return member_side_effects(self.context, {
                str(p["email_address"]).lower() for p in map(_payload, rows)
                if isinstance(p, dict) and p.get("email_address")})
        return nullcontext()

    def _record(self, row: dict[str, Any], attempt: Attempt) -> None:
        self.replayer.record(row, attempt)
        if attempt.outcome == OK:
            self.report.healed[row["stream"]] += 1
        elif attempt.outcome == SKIPPED:
            self.report.settled += 1
        else:
            self.report.refused_again += 1
        if self.on_result:
            self.on_result(row, attempt)

    # --- what is left ------------------------------------------------------------------------

    def _count_left(self) -> None:
        report, this_run = self.report, self.context.run_id
        for row in self.audit.failed_unreplayed():
            stream, kind = row["stream"], classify(row)
            new = row["run_id"] == this_run or row["id"] in self._attempted
            if kind == BAD_INPUT:
                report.bad_input[stream] += 1
                continue
            report.reasons[public_reason(last_error(row))] += 1
            if kind == PERMANENT:
                report.permanent[stream] += 1
                report.permanent_now += row["run_id"] == this_run
            elif self.policy.exhausted(row):
                report.gave_up[stream] += 1
                report.gave_up_now += new
            else:
                report.pending[stream] += 1
                due = self.policy.next_attempt_at(row)
                report.next_due = min(due, report.next_due or due)


def _payload(row: dict[str, Any]) -> Any:
    return json.loads(row["payload"]) if row.get("payload") else None


def _dependencies(row: dict[str, Any]) -> set[tuple[str, str]]:
    if row["stream"] == "member_tags":
        return {("members", str(row["record_key"]).split("/", 1)[0])}
    if row["stream"] != "orders":
        return set()
    body = _payload(row)
    if not isinstance(body, dict):
        return set()
    needs = {("products", str(line.get("product_id"))) for line in body.get("lines") or []
             if isinstance(line, dict) and line.get("product_id") is not None}
    customer = body.get("customer")
    if isinstance(customer, dict) and customer.get("id") is not None:
        needs.add(("customers", str(customer["id"])))
    return needs
