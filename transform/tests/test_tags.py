"""Cost centers → tags and member tags, across streams and runs."""

from __future__ import annotations

from mapper_test_kit import DIVISION, account, contact, cost_center, invoice, line, rec, state

CC_RETAIL = f"cc:{DIVISION}:100"
CC_HORECA = f"cc:{DIVISION}:200"


def company_with_invoices() -> dict[str, list[dict]]:
    return {
        "accounts": [account(1), account(2)],
        "contacts": [contact(1, 1), contact(2, 1), contact(3, 2)],
        "sales_invoices": [invoice(1, 1), invoice(2, 1), invoice(3, 2)],
        "sales_invoice_lines": [line(1, 1, "100"), line(2, 2, "200"), line(3, 2, "100"),
                                line(4, 3, None)],
        "cost_centers": [cost_center("100", "Retail"), cost_center("200", "Horeca")],
    }


def tags_of(out) -> dict[str, set[str]]:
    tagged: dict[str, set[str]] = {}
    for record in out.records("member_tags"):
        if record["active"]:
            tagged.setdefault(record["email"], set()).add(record["tag_key"])
    return tagged


def test_members_get_their_accounts_invoice_cost_centers(pipeline):
    out = pipeline.run(company_with_invoices())

    assert tags_of(out) == {
        "jan.contact1@example.nl": {CC_RETAIL, CC_HORECA},
        "jan.contact2@example.nl": {CC_RETAIL, CC_HORECA},
    }  # account 2's only invoice line has no cost center
    assert out.by_key("tags", "tag_key") == {
        CC_RETAIL: {"tag_key": CC_RETAIL, "name": "CC 100 · Retail (101)", "active": True},
        CC_HORECA: {"tag_key": CC_HORECA, "name": "CC 200 · Horeca (101)", "active": True},
    }
    names = {r["tag_key"]: r["tag_name"] for r in out.records("member_tags")}
    assert names[CC_HORECA] == "CC 200 · Horeca (101)"


def test_outputs_of_one_flush_come_in_dependency_order(run_mapper):
    # One STATE at the very end: everything is computed in one flush.
    messages = [rec(stream, r) for stream, rows in company_with_invoices().items() for r in rows]
    out = run_mapper([*messages, state({"bookmarks": {}})])

    streams = [m["stream"] for m in out if m["type"] == "RECORD"]
    first = {s: streams.index(s) for s in dict.fromkeys(streams)}
    assert list(first) == ["tags", "members", "member_tags", "customers", "products", "orders"]
    assert streams == sorted(streams, key=list(first).index)
    assert out[-1]["type"] == "STATE"


def test_tag_name_template_setting(pipeline):
    out = pipeline.run(company_with_invoices(), tag_name_template="{description} ({code})")
    assert out.by_key("tags", "tag_key")[CC_RETAIL]["name"] == "Retail (100)"


def test_renamed_cost_center_sends_only_the_tag(pipeline):
    pipeline.run(company_with_invoices())

    out = pipeline.run({"cost_centers": [cost_center("100", "Winkels",
                                                     Modified="2024-06-01T00:00:00Z")]})

    assert out.records() == [
        {"tag_key": CC_RETAIL, "name": "CC 100 · Winkels (101)", "active": True}
    ]


def test_inactive_cost_center_sends_inactive_tag(pipeline):
    pipeline.run(company_with_invoices())

    out = pipeline.run({"cost_centers": [cost_center("200", "Horeca", Active=False)]})

    assert out.records("tags") == [{"tag_key": CC_HORECA, "name": "CC 200 · Horeca (101)",
                                    "active": False}]


def test_new_contact_in_a_later_run_gets_the_accounts_existing_tags(pipeline):
    pipeline.run(company_with_invoices())

    out = pipeline.run({"contacts": [contact(9, 1, Email="nieuw@bakkerij1.nl")]})

    assert set(out.by_key("members", "email")) == {"nieuw@bakkerij1.nl"}
    assert tags_of(out) == {"nieuw@bakkerij1.nl": {CC_RETAIL, CC_HORECA}}


def test_new_invoice_cost_center_tags_the_accounts_members_and_removed_one_is_untagged(pipeline):
    pipeline.run(company_with_invoices())

    added = pipeline.run({
        "sales_invoices": [invoice(3, 2, Modified="2024-06-01T00:00:00Z")],
        "sales_invoice_lines": [line(4, 3, "200")],
    })
    assert tags_of(added) == {"jan.contact3@example.nl": {CC_HORECA}}
    assert added.records("members") == []  # the member itself did not change

    moved = pipeline.run({"sales_invoice_lines": [line(4, 3, "100")]})
    changes = {(r["tag_key"], r["active"]) for r in moved.records("member_tags")}
    assert changes == {(CC_RETAIL, True), (CC_HORECA, False)}
    removal = next(r for r in moved.records("member_tags") if not r["active"])
    assert removal["tag_name"] == "CC 200 · Horeca (101)"  # the target needs the name to remove it


def test_tag_removal_the_target_never_confirmed_is_sent_again(pipeline):
    pipeline.run(company_with_invoices())
    moved = {"sales_invoice_lines": [line(2, 2, "100")]}  # account 1 no longer uses Horeca
    first = pipeline.run(moved, target_confirms=False)  # e.g. the target died at its drain
    removals = [(r["email"], r["tag_key"]) for r in first.records("member_tags")
                if not r["active"]]
    assert removals == [("jan.contact1@example.nl", CC_HORECA),
                        ("jan.contact2@example.nl", CC_HORECA)]

    retry = pipeline.run(moved)  # the tap resends from the state the target confirmed

    assert [(r["email"], r["tag_key"]) for r in retry.records("member_tags")
            if not r["active"]] == removals
    assert pipeline.run(moved).records() == []
