"""After a case: what Mailchimp holds against the independent expectation, consent, secrets."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import e2e_expectation as expectation
import requests
from e2e_pipeline import ROOT, Pipeline, find_secrets

CONSENT_KEPT = ("unsubscribed", "cleaned")  # statuses only the person may change
MARKETABLE = ("subscribed", "pending")
SECRET_SUFFIXES = ("SECRET", "_KEY", "_TOKEN", "PASSWORD")  # settings holding a secret value
ABSURD_AMOUNT = 1e13  # a double no longer holds every cent: such an invoice is dead-lettered
COUNTED = ("lost", "duplicated", "wrong", "resubscribed", "secrets_found", "failed_runs")


@dataclass
class Outcome:
    """One case's figures; `notes` say what each non-zero figure is about (no secret values)."""

    case: str
    tried: int = 1
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    resubscribed: int = 0
    secrets_found: int = 0
    failed_runs: int = 0  # the last run of the case did not exit 0
    unexercised: int = 0  # a fault or kill point the runs never met: the case proved nothing
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(getattr(self, name) for name in (*COUNTED, "unexercised"))

    def add(self, figure: str, note: str, count: int = 1) -> None:
        setattr(self, figure, getattr(self, figure) + count)
        self.notes.append(f"{figure}: {note}")

    def report(self) -> str:
        figures = ", ".join(f"{name}={getattr(self, name)}" for name in (*COUNTED, "unexercised"))
        shown = self.notes[:12] + ([f"... {len(self.notes) - 12} more"] if len(self.notes) > 12
                                   else [])
        return f"{self.case}: {figures}\n  " + "\n  ".join(shown)


def mailchimp_address(email: str) -> str:
    """The form Mailchimp accepts: an internationalised domain in IDNA (punycode)."""
    local, _, domain = email.rpartition("@")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return email
    return f"{local}@{ascii_domain}".lower()


def strip_controls(text: str) -> str:
    return "".join(ch for ch in text if ch in "\t" or not (ord(ch) < 32 or 127 <= ord(ch) < 160))


def secret_values(pipeline: Pipeline) -> dict[str, str]:
    """Every secret this pipeline's runs could leak, by name (names go into reports)."""
    found = {**pipeline.secrets, "mailchimp_oauth_token": pipeline.mailchimp.oauth_token}
    for name, value in pipeline.env.items():
        if name.endswith(SECRET_SUFFIXES) and value and os.environ.get(name) != value:
            found[f"env {name}"] = value
    authority = pipeline.exact.authority
    # Every token the sandbox issued (no public accessor: the sandbox is read, not changed).
    with authority._lock:
        tokens = [*authority._refresh, *authority._access]
    for number, token in enumerate(tokens):
        found[f"exact token #{number}"] = token
    return found


def files_with_secrets(pipeline: Pipeline) -> list[str]:
    """Files under `.meltano/`, `.env`, `output/` and the workdir (which keeps every run's
    output) holding a secret in any form (the e2e helper's scan)."""
    roots = [ROOT / ".meltano", ROOT / ".env", ROOT / "output", pipeline.workdir]
    return find_secrets(roots, secret_values(pipeline), changed_since=pipeline.started_at)


def scan_for_secrets(pipeline: Pipeline, outcome: Outcome) -> None:
    for finding in files_with_secrets(pipeline):
        outcome.add("secrets_found", finding)


def judge(pipeline: Pipeline, case: str, *, overlay: dict[str, str] | None = None,
          last_returncode: int = 0,
          divisions: tuple[int, ...] | None = None) -> Outcome:
    """Compare Mailchimp with the expectation from Exact's rows; count each difference once."""
    outcome = Outcome(case)
    if last_returncode != 0:
        outcome.add("failed_runs", f"last run exited {last_returncode}")
    overlay = {mailchimp_address(e): s for e, s in (overlay or {}).items()}
    expected = expected_state(pipeline.exact, divisions)
    excluded = {mailchimp_address(e) for e, s in expected.members.items() if s == "unsubscribed"}
    want = {mailchimp_address(e): s for e, s in expected.members.items()}
    for email, status in overlay.items():  # what people did in Mailchimp before the case
        if status == "archived":
            want.pop(email, None)
        elif status in CONSENT_KEPT:
            want[email] = status
        elif status == "subscribed" and want.get(email) == "transactional":
            want[email] = "subscribed"
    members = pipeline.members()
    live = {e.lower(): m for e, m in members.items() if m["status"] != "archived"}

    for email, status in want.items():
        if email not in live:
            outcome.add("lost", f"member {email} ({status}) missing")
    for email, member in live.items():
        status = member["status"]
        slipped = (
            (overlay.get(email) == "archived")
            or (overlay.get(email) in CONSENT_KEPT and status != overlay[email])
            or (email in excluded and status in MARKETABLE)
        )
        if slipped:
            outcome.add("resubscribed", f"{email} is {status} (consent: "
                        f"{overlay.get(email) or 'excluded in Exact'})")
        elif email not in want:
            outcome.add("wrong", f"unexpected member {email} ({status})")
        elif status != want[email]:
            outcome.add("wrong", f"{email} is {status}, expected {want[email]}")

    _check_names_and_tags(expected, live, overlay, outcome)
    archived = {e for e, status in overlay.items() if status == "archived"}
    _check_orders(pipeline, expected, outcome, _accounts_holding(pipeline.exact, archived))
    _check_duplicates(pipeline, outcome)
    scan_for_secrets(pipeline, outcome)
    return outcome


def expected_state(exact: Any, divisions: tuple[int, ...] | None) -> expectation.Expected:
    if divisions is None:
        return expectation.expected_state(exact)
    # The expectation reads its company's divisions from a module constant.
    saved = expectation.DIVISIONS
    expectation.DIVISIONS = divisions
    try:
        return expectation.expected_state(exact)
    finally:
        expectation.DIVISIONS = saved


def _check_names_and_tags(expected: expectation.Expected, live: dict[str, dict[str, Any]],
                          overlay: dict[str, str], outcome: Outcome) -> None:
    for email, name in expected.first_names.items():
        email = mailchimp_address(email)
        if email in overlay or email not in live or not name:
            continue
        want = strip_controls(name).strip()
        got = str(live[email]["merge_fields"].get("FNAME") or "")
        # Mailchimp caps text merge fields (255): a cut value must still be the name's start.
        if got != want and not (len(want) > 255 and got and want.startswith(got)):
            outcome.add("wrong", f"{email} FNAME {got[:40]!r}, expected {want[:40]!r}")
    want_tags = {mailchimp_address(e): t for e, t in expected.tags.items()}
    for email in set(want_tags) | {e for e, m in live.items() if m["tags"]}:
        if email in overlay or email not in live:
            continue
        got = set(live[email]["tags"])
        if got != want_tags.get(email, set()):
            outcome.add("wrong", f"{email} tags {sorted(got)}, expected "
                        f"{sorted(want_tags.get(email, set()))}")


def _accounts_holding(exact: Any, emails: set[str]) -> set[str]:
    """Accounts with any of `emails` on a contact or on the account itself."""
    held = {c.get("Account") for c in exact.rows("Contacts")
            if {expectation.usable(c.get("Email")), expectation.usable(c.get("BusinessEmail"))}
            & emails}
    return held | {a["ID"] for a in exact.rows("Accounts") if expectation.usable(a.get("Email"))
                   in emails}


def _check_orders(pipeline: Pipeline, expected: expectation.Expected, outcome: Outcome,
                  unsendable: set[str]) -> None:
    """Orders of accounts in `unsendable` (their contact was archived in Mailchimp, and
    sending the customer would restore it) may be missing; if present they must be right."""
    orders = pipeline.orders()
    invoices = {f"exact-{i['Division']}-{i['InvoiceID']}": i
                for i in pipeline.exact.rows("SalesInvoices")}
    for order_id, status in expected.orders.items():
        order = orders.get(order_id)
        invoice = invoices[order_id]
        if abs(float(invoice.get("AmountFC") or 0)) >= ABSURD_AMOUNT:
            if order is not None:
                outcome.add("wrong", f"order {order_id} of an absurd amount was accepted")
            continue
        if order is None:
            if invoice["InvoiceTo"] not in unsendable:
                outcome.add("lost", f"order {order_id} missing")
            continue
        if order.get("financial_status") != status:
            outcome.add("wrong", f"order {order_id} is {order.get('financial_status')}, "
                        f"expected {status}")
            continue
        total = round(abs(float(invoice.get("AmountFC") or 0)), 2)
        if abs(float(order.get("order_total") or 0) - total) > 0.005 or (
                order.get("currency_code") != invoice.get("Currency")):
            outcome.add("wrong", f"order {order_id} total {order.get('order_total')} "
                        f"{order.get('currency_code')}, Exact says {total} "
                        f"{invoice.get('Currency')}")
        elif problem := _line_problem(order, invoice):
            outcome.add("wrong", f"order {order_id}: {problem}")
    for order_id in set(orders) - set(expected.orders):
        outcome.add("wrong", f"unexpected order {order_id}")


def _line_problem(order: dict[str, Any], invoice: dict[str, Any]) -> str | None:
    """Mailchimp's order arithmetic (transform/README.md, "Order values"): whole quantities of
    at least 1, no negative price, tax = |VATAmountFC|, and Σ(quantity × price) − discount +
    tax = total, to the cent."""
    cent = Decimal("0.01")
    lines = order.get("lines", [])
    for line in lines:
        quantity, price = line.get("quantity"), Decimal(str(line.get("price", 0)))
        if not isinstance(quantity, int) or quantity < 1 or price < 0:
            return f"line {line.get('id')} is {quantity} × {price}"
    tax = Decimal(str(order.get("tax_total") or 0))
    if abs(tax - abs(Decimal(str(invoice.get("VATAmountFC") or 0)))) > cent / 2:
        return f"tax_total {tax}, Exact's VAT is {invoice.get('VATAmountFC')}"
    revenue = sum((line["quantity"] * Decimal(str(line["price"])) for line in lines), Decimal(0))
    total = revenue - Decimal(str(order.get("discount_total") or 0)) + tax
    if abs(total - Decimal(str(order.get("order_total") or 0))) > cent / 2 * max(1, len(lines)):
        return f"lines add up to {total}, not {order.get('order_total')}"
    return None


def _check_duplicates(pipeline: Pipeline, outcome: Outcome) -> None:
    """What a doubled write would leave: two tags of one name, an order line twice."""
    mailchimp = pipeline.mailchimp
    dump = requests.get(f"{mailchimp.url}/_sandbox/lists/{mailchimp.list_id}/members",
                        timeout=30).json()
    names = Counter(name.lower() for name in dump.get("tags", {}).values())
    for name, count in names.items():
        if count > 1:
            outcome.add("duplicated", f"tag {name!r} exists {count} times", count - 1)
    for order_id, order in pipeline.orders().items():
        lines = Counter(line.get("id") for line in order.get("lines", []))
        extra = sum(n - 1 for n in lines.values() if n > 1)
        if extra:
            outcome.add("duplicated", f"order {order_id} has {extra} repeated line(s)", extra)
