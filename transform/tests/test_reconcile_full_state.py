"""What the `reconcile` job relies on (its tap has no `state` capability, so it never echoes
a saved state): the mapper sends the WHOLE desired state on every such run, not only changes,
and re-evaluates inactivity for everyone, so time alone makes a customer inactive."""

from __future__ import annotations

from mapper_test_kit import account, contact, invoice, line, tap_run

COMPANY = {
    "accounts": [account(1), account(2)],
    "contacts": [contact(1, 1), contact(2, 2)],
    "sales_invoices": [invoice(1, 1, InvoiceDate="2019-01-01T00:00:00Z"),
                       invoice(2, 2, InvoiceDate="2099-01-01T00:00:00Z")],
    "sales_invoice_lines": [line(1, 1, None), line(2, 2, None)],
}
INACTIVE = "Inactive customer"


def test_every_full_read_without_an_echo_sends_everything_again_with_todays_inactivity(
        run_mapper) -> None:
    # The same full read every month, as the reconcile tap makes it (STATEs, never an echo).
    first = run_mapper(tap_run(COMPANY, bookmark=1), inactive_after_days=100_000)
    emails = {r["email"] for r in first.records("members")}
    assert emails == {"jan.contact1@example.nl", "jan.contact2@example.nl"}
    assert not [r for r in first.records("member_tags") if r["tag_name"] == INACTIVE]

    # A later month: nothing changed in Exact, but account 1's last invoice is now too old
    # (a shorter window stands in for the time passed).
    later = run_mapper(tap_run(COMPANY, bookmark=1), inactive_after_days=365)
    assert {r["email"] for r in later.records("members")} == emails  # all of it, again
    assert len(later.records("orders")) == len(first.records("orders")) == 2
    assert {r["email"] for r in later.records("member_tags")
            if r["tag_name"] == INACTIVE and r["active"]} == {"jan.contact1@example.nl"}
