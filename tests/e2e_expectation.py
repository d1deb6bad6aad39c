"""What Mailchimp should hold, computed straight from the Exact sandbox's rows.

Written independently of the mapper's code, from the documented rules (transform/README.md):
one member per usable email (a contact's Email, else its BusinessEmail; an account's own Email
only when none of its contacts has one), never subscribed when any record holding the email is
excluded from mailing or belongs to a blocked account, new members `transactional` otherwise
(the target's consent-safe default); one order per non-draft invoice of an account that has a
usable email, refunded for credit notes, paid when its receivable is fully paid, else pending;
each member tagged `CC {code} · {description} ({division})` for the active cost centers on the
non-draft invoice lines of every account holding its address.

Order values (transform/README.md, "Order values"): order_total and tax_total are the invoice's
AmountFC and VATAmountFC without sign; seen with the sign of the invoice total, lines with a
negative amount add up to discount_total and the rest are the lines, whose quantity × price
adds up to their AmountFC.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

DIVISIONS = (101, 102, 103)
CREDIT_NOTES = {8021, 8024}
DRAFT = 10
# Deliberately simpler than the mapper's validator; the seeded bad addresses fail both.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def usable(*candidates: str | None) -> str | None:
    for candidate in candidates:
        email = (candidate or "").strip().lower()
        if EMAIL.match(email):
            return email
    return None


@dataclass
class Holder:
    modified: str
    first_name: str | None
    excluded: bool


@dataclass
class Expected:
    members: dict[str, str] = field(default_factory=dict)  # email -> status
    first_names: dict[str, str | None] = field(default_factory=dict)  # single-holder emails
    orders: dict[str, str] = field(default_factory=dict)  # order id -> financial_status
    tags: dict[str, set[str]] = field(default_factory=dict)  # email -> tag names
    # order id -> (order_total, tax_total, discount_total, Σ quantity × price of its lines)
    order_values: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


def order_values(invoice: dict[str, Any]) -> tuple[float, float, float, float]:
    negative = invoice["AmountFC"] < 0 or (invoice["AmountFC"] == 0
                                           and invoice["Type"] in CREDIT_NOTES)
    signed = [-line["AmountFC"] if negative else line["AmountFC"]
              for line in invoice["SalesInvoiceLines"]]
    return (abs(invoice["AmountFC"]), abs(invoice["VATAmountFC"]),
            round(-sum(a for a in signed if a < 0), 2), round(sum(a for a in signed if a > 0), 2))


def sent_order_values(order: dict[str, Any]) -> tuple[float, float, float, float]:
    """The same four figures read back from a Mailchimp order."""
    revenue = sum(line["quantity"] * line["price"] for line in order["lines"])
    return (order["order_total"], order.get("tax_total"), order.get("discount_total"),
            round(revenue, 2))


def expected_state(exact: Any) -> Expected:
    holders: dict[str, list[Holder]] = defaultdict(list)
    orders: dict[str, str] = {}
    values: dict[str, tuple[float, float, float, float]] = {}
    tags: dict[str, set[str]] = defaultdict(set)
    for division in DIVISIONS:
        accounts = {a["ID"]: a for a in exact.rows("Accounts", division=division)}
        emails_of_account: dict[str, set[str]] = defaultdict(set)
        for contact in exact.rows("Contacts", division=division):
            account = accounts.get(contact.get("Account")) or {}
            email = usable(contact.get("Email"), contact.get("BusinessEmail"))
            if email is None:
                continue
            emails_of_account[contact.get("Account")].add(email)
            excluded = bool(contact.get("IsMailingExcluded") or account.get("Blocked"))
            holders[email].append(Holder(contact["Modified"], contact.get("FirstName"), excluded))
        for account_id, account in accounts.items():
            if emails_of_account[account_id]:
                continue
            email = usable(account.get("Email"))
            if email is not None:
                emails_of_account[account_id].add(email)
                holders[email].append(Holder(account["Modified"], None, bool(account["Blocked"])))

        cost_centers = {
            c["Code"]: c for c in exact.rows("Costcenters", division=division) if c["Active"]
        }
        for invoice in exact.rows("SalesInvoices", division=division):
            if invoice.get("Status") == DRAFT:
                continue
            for line in invoice["SalesInvoiceLines"]:
                center = cost_centers.get(line.get("CostCenter"))
                if center is None:
                    continue
                name = f"CC {center['Code']} · {center['Description']} ({division})"
                for email in emails_of_account[invoice["InvoiceTo"]]:
                    tags[email].add(name)

        paid = {
            r["InvoiceNumber"] for r in exact.rows("Receivables", division=division)
            if r.get("IsFullyPaid")
        }
        for invoice in exact.rows("SalesInvoices", division=division):
            if invoice.get("Status") == DRAFT or not emails_of_account[invoice["InvoiceTo"]]:
                continue
            if invoice["Type"] in CREDIT_NOTES:
                status = "refunded"
            elif invoice["InvoiceNumber"] in paid:
                status = "paid"
            else:
                status = "pending"
            orders[f"exact-{division}-{invoice['InvoiceID']}"] = status
            values[f"exact-{division}-{invoice['InvoiceID']}"] = order_values(invoice)

    expected = Expected(orders=orders, tags=dict(tags), order_values=values)
    for email, held in holders.items():
        excluded = any(h.excluded for h in held)
        expected.members[email] = "unsubscribed" if excluded else "transactional"
        if len(held) == 1 and held[0].first_name:
            expected.first_names[email] = held[0].first_name
    return expected


def assert_mailchimp_holds(exact: Any, mailchimp: Any, label: str = "",
                           ) -> tuple[Expected, dict[str, str]]:
    """The Mailchimp sandbox's live members and its store's orders are exactly Exact's.

    Returns the expectation and the live members (email -> status)."""
    expected = expected_state(exact)
    live = {m["email_address"]: m["status"] for m in mailchimp.members()
            if m["status"] != "archived"}
    assert live == expected.members, label
    orders = mailchimp.store("exact-online")["orders"]
    assert {oid: o["financial_status"] for oid, o in orders.items()} == expected.orders, label
    return expected, live
