"""`mailing_exclusions` → `IsMailingExcluded = true` on every Exact contact with the address.

Exact stays the source of identity: we never change an address, only the opt-out flag, and only
when `write_exclusions` is on (off by default; then each finding is reported). A contact already
excluded is not written again, so a second run (or our own write coming back) writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from target_exactonline.audit import FAILED, IGNORED, REPORTED, UNCHANGED, WRITTEN, Decision
from target_exactonline.client import ExactRefused
from target_exactonline.lookups import find

if TYPE_CHECKING:
    from target_exactonline.run import Run

STREAM = "mailing_exclusions"
EXCLUDING_STATUSES = {"unsubscribed", "cleaned"}
CONTACT_FIELDS = ("ID", "Email", "BusinessEmail", "IsMailingExcluded")


def _address(record: dict[str, Any]) -> str:
    return str(record.get("email") or "").strip().lower()


def write_exclusions(run: Run, records: list[dict[str, Any]]) -> None:
    wanted: dict[str, dict[str, Any]] = {}
    for record in records:
        email = _address(record)
        if not email or "@" not in email:
            run.audit.record(Decision(STREAM, email or "?", "exclude", IGNORED,
                                      "no e-mail address"))
        elif record.get("status") not in EXCLUDING_STATUSES:
            run.audit.record(Decision(STREAM, email, "exclude", IGNORED,
                                      f"status {record.get('status')!r} excludes nothing"))
        else:
            wanted[email] = record  # the last record of an address is its newest word
    if not wanted:
        return
    for division in run.divisions:
        rows = find(run.client, division, "crm/Contacts", ("Email", "BusinessEmail"),
                    sorted(wanted), CONTACT_FIELDS)
        matched: set[str] = set()
        for row in rows:
            addresses = {str(row.get(f) or "").strip().lower() for f in ("Email", "BusinessEmail")}
            for email in sorted(addresses & wanted.keys()):
                matched.add(email)
                _exclude(run, division, email, wanted[email], row)
        for email in sorted(wanted.keys() - matched):
            run.audit.record(Decision(STREAM, email, "exclude", REPORTED,
                                      "no Exact contact has this address", division))


def _exclude(run: Run, division: int, email: str, record: dict[str, Any],
             row: dict[str, Any]) -> None:
    def decided(outcome: str, reason: str) -> None:
        run.audit.record(Decision(STREAM, email, "exclude", outcome, reason, division,
                                  "Contacts", row["ID"]))

    why = f"{record.get('status')} in Mailchimp at {record.get('changed_at')} " \
          f"({record.get('source') or 'poll'})"
    if row.get("IsMailingExcluded") is True:
        decided(UNCHANGED, f"already excluded from mailing; {why}")
        return
    if not run.config.get("write_exclusions", False):
        decided(REPORTED, f"would set IsMailingExcluded (write_exclusions is off); {why}")
        return
    try:
        run.client.put(f"{division}/crm/Contacts(guid'{row['ID']}')", {"IsMailingExcluded": True})
    except ExactRefused as exc:
        decided(FAILED, str(exc))
        return
    row["IsMailingExcluded"] = True  # the same contact may carry two wanted addresses
    decided(WRITTEN, f"IsMailingExcluded set; {why}")
