"""`target-mailchimp-admin status`: is all well, at a glance, without reading logs.

Every figure comes from a store a plugin already keeps (no second source of truth):
- the target's audit database (`audit_store_url`): its runs (`run_log`), every write with its
  outcome, and the failed writes not yet settled (`audit`, `refusals`);
- the tap's run summary (`exact_run_summary_path` = the tap's `run_summary_path`): records
  read per stream, Exact's daily budget left per division, the refresh token's issue time;
- the mapper's dead letters (table `rejections` of the mapper's database, `mapper_store_url` =
  the mapper's `store_url`): records that could not become Mailchimp data, with their Exact keys.
Reads only; never calls Mailchimp or Exact. Exit status: 0 all is well, 1 something needs a
person (a failed run since the last good one, writes still failing, an old refresh token).
"""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from target_mailchimp.audit import AuditStore, as_utc, writes
from target_mailchimp.audit_db import audit_exists, audit_place, audit_url
from target_mailchimp.mapper_rejections import read_rejections
from target_mailchimp.refusals import classify, last_error, public_reason
from target_mailchimp.run_log import FAILED, OK, RUNNING, engine_for, runs

EXAMPLES = 3  # newest examples shown per reason
TEXT_REASONS = 8  # reasons listed in the text form (JSON: all)
_QUOTED = re.compile(r"'[^']*'")
_GUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
TOKEN_WARN_DAYS = 7  # as tap-exactonline's check: Exact expires an unused token after 30 days
TOKEN_EXPIRES_DAYS = 30
AUTHORIZE = "`meltano invoke tap-exactonline:authorize`"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(value: datetime.datetime | None) -> str | None:
    return as_utc(value).isoformat(timespec="seconds") if value else None


def _parse(text: str | None) -> datetime.datetime | None:
    try:
        return as_utc(datetime.datetime.fromisoformat(text)) if text else None
    except ValueError:
        return None


def _short(text: str | None) -> str:
    when = _parse(text)
    return when.strftime("%Y-%m-%d %H:%M UTC") if when else "?"


def reason_kind(reason: object) -> str:
    """A reason without the values that make each one unique (a quoted address, an id), so
    rejections group by kind, and without personal data (the value is in the dead letter)."""
    text = _QUOTED.sub("'…'", str(reason))
    return public_reason(_GUID.sub("<id>", text), 160)


class StatusReport:
    def __init__(self, config: Mapping[str, Any], now: datetime.datetime | None = None) -> None:
        self.config = config
        self.now = now or _now()
        self.problems: list[str] = []

    # -- the whole report ---------------------------------------------------------------------
    def build(self) -> dict[str, Any]:
        url = audit_url(self.config.get("audit_store_url"))
        report: dict[str, Any] = {"generated_at": _iso(self.now)}
        if audit_exists(url):
            report["mailchimp"] = self._mailchimp(url)
        else:
            report["mailchimp"] = None
            self.problems.append("No target run has been recorded yet (no audit database at "
                                 f"{audit_place(url)}): run the job "
                                 "(`meltano run exactonline-to-mailchimp`).")
        report["exact"] = self._exact()
        report["rejected_records"] = self._rejections()
        report["problems"] = self.problems
        report["status"] = "attention" if self.problems else "ok"
        return report

    # -- Mailchimp side: runs and writes from the audit database ------------------------------
    def _mailchimp(self, url: str) -> dict[str, Any]:
        engine = engine_for({"audit_store_url": url})
        try:
            with engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(
                    sa.select(runs).order_by(runs.c.started_at.desc()))]
                last_ok = next((r for r in rows if r["outcome"] == OK), None)
                since = [r for r in rows if last_ok is None
                         or as_utc(r["started_at"]) > as_utc(last_ok["started_at"])]
                result: dict[str, Any] = {
                    "last_successful_run": self._run(conn, last_ok) if last_ok else None,
                    "runs_since_with_errors": [self._run(conn, r) for r in since
                                               if r["outcome"] != OK and not self._live(r)],
                }
        finally:
            engine.dispose()
        if last_ok is None:
            self.problems.append("No target run has succeeded yet: run the job (`meltano run "
                                 "exactonline-to-mailchimp`) and read its log.")
        failed_runs = result["runs_since_with_errors"]
        if failed_runs:
            newest = failed_runs[0]
            self.problems.append(
                f"{len(failed_runs)} target run(s) failed since the last successful one, the "
                f"newest at {_short(newest['started_at'])} ({newest['detail'] or 'killed'}): "
                "fix the cause in the message and run the job again.")
        result["failing_writes"] = self._failing(url)
        return result

    def _live(self, row: Mapping[str, Any]) -> bool:
        """A run without an end that started in the last hour may still be running."""
        started = as_utc(row["started_at"])
        return row["outcome"] == RUNNING and started is not None and (
            self.now - started < datetime.timedelta(hours=1))

    @staticmethod
    def _run(conn: sa.Connection, row: Mapping[str, Any]) -> dict[str, Any]:
        counts = conn.execute(
            sa.select(writes.c.stream, writes.c.operation, writes.c.outcome, sa.func.count())
            .where(writes.c.run_id == row["run_id"])
            .group_by(writes.c.stream, writes.c.operation, writes.c.outcome))
        by_kind: dict[str, dict[str, int]] = defaultdict(dict)
        for stream, operation, outcome, count in counts:
            by_kind[f"{stream} {operation}"][outcome] = count
        outcome = row["outcome"]
        return {"run_id": row["run_id"], "started_at": _iso(row["started_at"]),
                "ended_at": _iso(row["ended_at"]),
                "outcome": "killed or still running" if outcome == RUNNING else outcome,
                "detail": row["detail"], "writes": dict(sorted(by_kind.items()))}

    def _failing(self, url: str) -> dict[str, Any]:
        audit = AuditStore(url, "status")
        try:
            failed = list(audit.failed_unreplayed())
            groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            for row in failed:
                groups[(classify(row), public_reason(last_error(row), 160))].append(row)
            by_reason = []
            for (kind, reason), rows in sorted(groups.items(), key=lambda g: -len(g[1])):
                newest = sorted(rows, key=lambda r: r["id"], reverse=True)[:EXAMPLES]
                by_reason.append({
                    "reason": reason, "class": kind, "count": len(rows),
                    "newest": [{"stream": r["stream"], "key": r["record_key"],
                                "operation": r["operation"], "at": _iso(r["at"]),
                                "attempts": r["attempts"],
                                "superseded": audit.superseded(r)} for r in newest]})
        finally:
            audit.close()
        if failed:
            self.problems.append(
                f"{len(failed)} write(s) to Mailchimp are still failing (see below): retriable "
                "ones are retried by the next runs; after fixing the cause, re-send the rest "
                "with `meltano invoke target-mailchimp:replay`.")
        return {"count": len(failed), "by_reason": by_reason}

    # -- Exact side: the tap's run summary ----------------------------------------------------
    def _exact(self) -> dict[str, Any] | None:
        path = self.config.get("exact_run_summary_path")
        if not path:
            return None
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            self.problems.append(f"No tap run summary at {path}: run the job once (the tap's "
                                 "`run_summary_path` must name the same file).")
            return None
        last, last_ok = document.get("last") or {}, document.get("last_ok")
        result: dict[str, Any] = {
            "last_run": {k: last.get(k) for k in ("started_at", "finished_at", "outcome",
                                                  "error")},
            "last_successful_run": {k: last_ok.get(k) for k in (
                "started_at", "finished_at", "outcome", "records")} if last_ok else None,
            "budget_today": self._budget(last),
            "refresh_token": self._token(last.get("refresh_token_issued_at")),
        }
        if last.get("outcome") == FAILED:
            self.problems.append(f"The last Exact read failed at {_short(last.get('finished_at'))}"
                                 f" ({last.get('error')}): run `meltano invoke "
                                 "tap-exactonline:check` and fix what it says.")
        return result

    def _budget(self, run: Mapping[str, Any]) -> dict[str, Any]:
        budget = {}
        for division, values in (run.get("budget") or {}).items():
            reset = _parse(values.get("daily_reset"))
            limit, left = values.get("daily_limit"), values.get("daily_remaining")
            if reset is not None and reset <= self.now:  # Exact's day rolled over since
                budget[division] = {"used": 0, "limit": limit, "remaining": limit,
                                    "resets_at": None, "as_of": run.get("finished_at")}
                continue
            used = limit - left if limit is not None and left is not None else None
            budget[division] = {"used": used, "limit": limit, "remaining": left,
                                "resets_at": _iso(reset), "as_of": run.get("finished_at")}
        return budget

    def _token(self, issued: str | None) -> dict[str, Any] | None:
        issued_at = _parse(issued)
        if issued_at is None:
            return None
        age = (self.now - issued_at).total_seconds() / 86400
        expires = issued_at + datetime.timedelta(days=TOKEN_EXPIRES_DAYS)
        if age >= TOKEN_WARN_DAYS:
            self.problems.append(
                f"The refresh token is {age:.0f} days old and no run has succeeded since "
                f"{_short(issued)} (Exact expires it on {expires:%Y-%m-%d} if unused): run the "
                f"job or re-authorize with {AUTHORIZE}.")
        return {"issued_at": _iso(issued_at), "age_days": round(age, 2),
                "expires_if_unused_at": _iso(expires)}

    # -- the mapper's dead letters ------------------------------------------------------------
    def _rejections(self) -> dict[str, Any] | None:
        found = read_rejections(self.config)
        rows = found.open
        counts = Counter(reason_kind(r.get("reason")) for r in rows)
        by_reason = []
        for reason, count in counts.most_common():
            newest = [r for r in reversed(rows) if reason_kind(r.get("reason")) == reason][
                :EXAMPLES]
            # The key and division only: `value` may hold personal data.
            by_reason.append({"reason": reason, "count": count, "newest": [
                {"time": r.get("time"), "stream": r.get("stream"),
                 "division": r.get("division"), "key": r.get("key")} for r in newest]})
        return {"count": len(rows), "by_reason": by_reason, "fixed_since": found.fixed}


def render_text(report: Mapping[str, Any]) -> str:
    out = [f"Status at {_short(report['generated_at'])}: "
           f"{'all is well' if report['status'] == 'ok' else 'needs attention'}."]
    exact = report.get("exact")
    if exact:
        ok = exact.get("last_successful_run")
        if ok:
            records = ", ".join(f"{n} {s}" for s, n in (ok.get("records") or {}).items())
            out.append(f"Exact, last successful read: {_short(ok['finished_at'])} "
                       f"({records or 'no records'}).")
        last = exact["last_run"]
        if not ok or last.get("finished_at") != ok.get("finished_at"):
            out.append(f"Exact, last read: {_short(last.get('finished_at'))}, "
                       f"{last.get('outcome')}: {last.get('error') or ''}".rstrip(": "))
        for division, b in exact["budget_today"].items():
            out.append(f"Exact budget today, division {division}: {b['used']} of {b['limit']} "
                       f"calls used (as of {_short(b['as_of'])}"
                       + (f"; resets {_short(b['resets_at'])})" if b["resets_at"] else ")"))
        token = exact.get("refresh_token")
        if token:
            out.append(f"Exact refresh token: {token['age_days']:.1f} days old (issued "
                       f"{_short(token['issued_at'])}; expires if unused on "
                       f"{_short(token['expires_if_unused_at'])}).")
    mailchimp = report.get("mailchimp")
    if mailchimp:
        ok = mailchimp.get("last_successful_run")
        if ok:
            out.append(f"Mailchimp, last successful run: {_short(ok['ended_at'])} "
                       f"(run {ok['run_id']}).")
            for kind, outcomes in ok["writes"].items():
                out.append(f"  {kind}: " + ", ".join(f"{n} {o}" for o, n in outcomes.items()))
            if not ok["writes"]:
                out.append("  no writes (nothing had changed)")
        errors = mailchimp["runs_since_with_errors"]
        out.append(f"Mailchimp runs since with errors: {len(errors) or 'none'}.")
        for run in errors:
            out.append(f"  {_short(run['started_at'])} {run['outcome']}: {run['detail'] or ''}")
        failing = mailchimp["failing_writes"]
        out.append(f"Writes still failing: {failing['count'] or 'none'}.")
        for group in failing["by_reason"]:
            out.append(f"  {group['count']}x {group['reason']} [{group['class']}]")
            for ex in group["newest"]:
                out.append(f"    newest: {ex['stream']} {ex['key']} ({ex['operation']}) at "
                           f"{_short(ex['at'])}, re-sent {ex['attempts']}x")
    rejected = report.get("rejected_records")
    if rejected is not None:
        fixed = rejected.get("fixed_since")
        out.append(f"Records rejected by the mapper: {rejected['count'] or 'none'}"
                   f"{f' ({fixed} fixed since)' if fixed else ''}.")
        for group in rejected["by_reason"][:TEXT_REASONS]:
            out.append(f"  {group['count']}x {group['reason']}")
            for ex in group["newest"][:2]:
                out.append(f"    newest: {ex['stream']} division {ex['division']} key "
                           f"{ex['key']} at {_short(ex['time'])}")
        more = len(rejected["by_reason"]) - TEXT_REASONS
        if more > 0:
            out.append(f"  … and {more} more reason(s): `--format json` lists them all.")
    if report["problems"]:
        out.append("Problems:")
        out.extend(f"  - {p}" for p in report["problems"])
    return "\n".join(out)
