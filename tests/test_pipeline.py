"""The product as users run it:
`meltano run tap-exactonline exact-to-mailchimp target-mailchimp`, against both sandboxes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import e2e_expectation as expectation
from e2e_pipeline import PIPELINE, make_pipeline


def live_tags(pipeline) -> dict[str, set[str]]:
    """Tag names of every member that is not archived and has any."""
    return {
        email: set(member["tags"])
        for email, member in pipeline.members().items()
        if member["status"] != "archived" and member["tags"]
    }


def live_members(pipeline) -> dict[str, str]:
    return {
        email: member["status"]
        for email, member in pipeline.members().items()
        if member["status"] != "archived"
    }


def test_first_sync_matches_exact_and_a_second_run_writes_nothing(pipeline) -> None:
    pipeline.run()
    expected = expectation.expected_state(pipeline.exact)

    assert live_members(pipeline) == expected.members
    members = pipeline.members()
    for email, first_name in expected.first_names.items():
        assert members[email]["merge_fields"]["FNAME"] == first_name, email
    orders = pipeline.orders()
    assert {oid: o["financial_status"] for oid, o in orders.items()} == expected.orders
    assert {"paid", "pending", "refunded"} <= set(expected.orders.values())
    # Excluded people exist in the seed, and none of them is subscribed.
    assert "unsubscribed" in expected.members.values()
    assert "subscribed" not in {m["status"] for m in members.values()}
    assert live_tags(pipeline) == expected.tags
    assert expected.tags  # the seed's invoices do tag people

    log = (pipeline.workdir / "meltano-output.log").read_text()
    state = pipeline.state()
    for secret in pipeline.secrets.values():
        assert secret not in log
        assert secret not in state

    pipeline.mailchimp.reset_calls()
    pipeline.run()
    assert pipeline.mailchimp_writes() == 0
    assert live_members(pipeline) == expected.members

    # The Meltano command wiring of the target's replay (nothing failed, so nothing to send).
    replay = pipeline.invoke("target-mailchimp:replay")
    assert "Replay: 0 succeeded, 0 still failing" in replay.stdout + replay.stderr
    assert pipeline.mailchimp_writes() == 0


def test_incremental_run_carries_exactly_the_changes(pipeline) -> None:
    exact = pipeline.exact
    pipeline.run()
    before = pipeline.members()
    before_orders = {oid: o["financial_status"] for oid, o in pipeline.orders().items()}

    division = 101
    accounts = {a["ID"]: a for a in exact.rows("Accounts", division=division)}
    contacts = [
        c for c in exact.rows("Contacts", division=division)
        if expectation.usable(c.get("Email")) and not c.get("IsMailingExcluded")
        and not accounts[c["Account"]]["Blocked"]
    ]
    emails = [expectation.usable(c["Email"]) for c in contacts]
    singles = [c for c, e in zip(contacts, emails, strict=True) if emails.count(e) == 1]

    # A new customer with a contact.
    account = exact.create("Accounts", {
        "Division": division, "Name": "Nieuwe Klant B.V.", "Status": "C", "City": "Utrecht",
        "AddressLine1": "Oudegracht 1", "Postcode": "3511 AA", "Country": "NL",
    })
    exact.create("Contacts", {"Division": division, "Account": account["ID"], "FirstName": "Noor",
                              "LastName": "de Vries", "Email": "Noor.deVries@nieuweklant.nl"})
    # A contact who opts out of mailing in Exact, and a new one who is excluded from the start.
    opting_out = singles[0]
    exact.update("Contacts", opting_out["ID"], {"IsMailingExcluded": True})
    exact.create("Contacts", {"Division": division, "Account": account["ID"], "FirstName": "Ex",
                              "LastName": "Cluded", "Email": "excluded@nieuweklant.nl",
                              "IsMailingExcluded": True})
    # A deletion, and an email conflict won by the newer record.
    deleted = singles[1]
    exact.delete("Contacts", deleted["ID"])
    conflict = singles[2]
    exact.create("Contacts", {"Division": division, "Account": singles[3]["Account"],
                              "FirstName": "Newest", "LastName": "Holder",
                              "Email": conflict["Email"]})
    # A payment turns a pending order into a paid one.
    pending = next(
        r for r in exact.rows("Receivables", division=division)
        if not r["IsFullyPaid"] and before_orders.get(_order_id(exact, division, r)) == "pending"
    )
    exact.pay_receivable(pending["ID"])
    # A credit note becomes a refunded order.
    customer_invoice = next(
        i for i in exact.rows("SalesInvoices", division=division)
        if before_orders.get(f"exact-{division}-{i['InvoiceID']}")
    )
    line = customer_invoice["SalesInvoiceLines"][0]
    credit = exact.create("SalesInvoices", {
        "Division": division, "InvoiceTo": customer_invoice["InvoiceTo"], "Type": 8021,
        "Status": 50, "Currency": "EUR",
        "AmountFC": -line["AmountFC"], "AmountDC": -line["AmountFC"],
        "SalesInvoiceLines": [{
            "Item": line["Item"], "Quantity": -line["Quantity"], "UnitPrice": line["UnitPrice"],
            "CostCenter": line["CostCenter"],
        }],
    })

    exact.reset_calls()
    pipeline.mailchimp.reset_calls()
    pipeline.run()
    after = pipeline.members()
    orders = {oid: o["financial_status"] for oid, o in pipeline.orders().items()}

    assert after["noor.devries@nieuweklant.nl"]["status"] == "transactional"
    assert after["noor.devries@nieuweklant.nl"]["merge_fields"]["FNAME"] == "Noor"
    assert after.get("excluded@nieuweklant.nl", {"status": "unsubscribed"})["status"] in {
        "unsubscribed"
    }
    assert after[expectation.usable(opting_out["Email"])]["status"] == "unsubscribed"
    assert after[expectation.usable(deleted["Email"])]["status"] == "archived"
    assert after[expectation.usable(conflict["Email"])]["merge_fields"]["FNAME"] == "Newest"
    assert orders[_order_id(exact, division, pending)] == "paid"
    assert orders[f"exact-{division}-{credit['InvoiceID']}"] == "refunded"

    # Nothing else changed: untouched members and orders are exactly as before.
    touched = {"noor.devries@nieuweklant.nl", "excluded@nieuweklant.nl",
               *(expectation.usable(c["Email"]) for c in (opting_out, deleted, conflict))}
    for email, member in before.items():
        if email not in touched:
            assert after[email]["last_changed"] == member["last_changed"], email
    changed_orders = {oid for oid, status in orders.items() if before_orders.get(oid) != status}
    assert changed_orders == {_order_id(exact, division, pending),
                              f"exact-{division}-{credit['InvoiceID']}"}
    # The incremental run reads feeds, not the whole company page by page.
    assert exact.calls()["total"] < 40

    expected = expectation.expected_state(exact)
    assert live_members(pipeline) == expected.members
    assert orders == expected.orders
    assert live_tags(pipeline) == expected.tags


def _order_id(exact, division: int, receivable: dict) -> str:
    invoice = next(
        i for i in exact.rows("SalesInvoices", division=division)
        if i["InvoiceNumber"] == receivable["InvoiceNumber"]
    )
    return f"exact-{division}-{invoice['InvoiceID']}"


def test_a_run_killed_midway_is_completed_by_the_next_with_nothing_lost(
    meltano_plugins, exact_sandbox_factory, mailchimp_sandbox_factory, tmp_path
) -> None:
    # Slow Mailchimp down so the kill lands while writes are under way.
    pipeline = make_pipeline(
        exact_sandbox_factory(accounts_per_division=25, seed=11),
        mailchimp_sandbox_factory(latency=0.05),
        tmp_path,
    )
    process = subprocess.Popen(
        [*pipeline.command("run"), *PIPELINE], cwd=pipeline.root, env=pipeline.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=lambda: os.umask(0o022),  # the plugins must not rely on the caller's umask
    )
    deadline = time.monotonic() + 120
    while not pipeline.mailchimp.members() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    expected = expectation.expected_state(pipeline.exact)
    partial_orders = {oid: o["financial_status"] for oid, o in pipeline.orders().items()}
    # The kill left work undone (members go in one bulk call, orders one by one after them).
    assert pipeline.mailchimp.members()
    assert partial_orders != expected.orders

    # No secret in any file the killed run left behind (Meltano's run dirs included), and the
    # files holding customer data are private although Meltano ran with a lax umask.
    left_behind = list((pipeline.workdir / ".meltano" / "run").rglob("*.config.json"))
    assert left_behind  # the kill left Meltano's plugin config files: they were scanned
    assert pipeline.files_with_secrets() == []
    assert (pipeline.workdir / "audit.sqlite").exists()
    assert (pipeline.workdir / "lookup.sqlite").exists()
    for path in pipeline.workdir.rglob("*"):
        meltanos = path.name.startswith(("meltano.db", "meltano-output")) or (
            ".meltano" in path.relative_to(pipeline.workdir).parts)
        if path.is_file() and not path.is_symlink() and not meltanos:
            mode = path.stat().st_mode & 0o777
            assert mode & 0o077 == 0, f"{path.name}: {oct(mode)}"

    # Meltano still sees the killed run as running (stale after 5 minutes): --force, as documented.
    pipeline.run("--force")
    assert live_members(pipeline) == expected.members
    assert {oid: o["financial_status"] for oid, o in pipeline.orders().items()} == expected.orders
    assert pipeline.files_with_secrets() == []
