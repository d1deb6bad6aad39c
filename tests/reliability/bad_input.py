"""A corpus of awkward records, created in Exact through the sandbox's data API."""

from __future__ import annotations

from typing import Any

from reliability.stage import Stage

DIVISION = 101
OTHER_DIVISION = 102
ABSURD_AMOUNT = 1e12  # no real invoice is worth this: the order is refused, not sent


def create_bad_input(stage: Stage) -> None:
    """Accounts, contacts and invoices the pipeline must survive; the sandbox refusing one of
    them is noted as unexercised (the sandbox must answer as Exact would)."""
    exact = stage.exact
    account = _create(stage, "Accounts", {
        "Division": DIVISION, "Name": "Bad Input\x00 B.V.\x07", "Status": "C",
        "City": "Utrecht" + "x" * 300, "AddressLine1": "Oudegracht 1",
        "Postcode": "3511 AA", "Country": "NL", "Email": "account-only@badinput.example",
    })
    other = _create(stage, "Accounts", {
        "Division": OTHER_DIVISION, "Name": "Doppel GmbH", "Status": "C", "Country": "BE",
    })
    if account is None or other is None:
        return
    contacts = [
        {"FirstName": "Invalid", "Email": "not-an-email"},
        {"FirstName": "NoDot", "Email": "a@b"},
        {"FirstName": "Double", "Email": "x@@y.nl"},
        {"FirstName": "Spaced", "Email": "spaced name@badinput.example"},
        {"FirstName": "Jürgen", "Email": "user@müller.de"},
        {"FirstName": "Ja\x00n\x07", "LastName": "de\x1bVries\r\n",
         "Email": "ctrl@badinput.example"},
        {"FirstName": "A" * 300, "LastName": "B" * 300, "Email": "long@badinput.example"},
        {"FirstName": "Excluded", "Email": "excluded@badinput.example", "IsMailingExcluded": True},
        {"FirstName": "Dup", "Email": "dup@badinput.example"},
        {"FirstName": "Case", "Email": "Dup2@BadInput.example"},
        {"FirstName": "Lower", "Email": "dup2@badinput.example"},
    ]
    for fields in contacts:
        _create(stage, "Contacts", {"Division": DIVISION, "Account": account["ID"],
                                    "LastName": "Test", **fields})
    # The same address in another division, excluded there: nobody may subscribe it.
    _create(stage, "Contacts", {"Division": OTHER_DIVISION, "Account": other["ID"],
                                "FirstName": "Dup", "LastName": "Elsewhere",
                                "Email": "dup@badinput.example", "IsMailingExcluded": True})

    item = exact.rows("Items", division=DIVISION)[0]["ID"]
    invoices: list[list[dict[str, Any]]] = [
        [{"Item": item, "Quantity": 2.5, "UnitPrice": 95.0, "CostCenter": "100"}],
        [{"Item": item, "Quantity": 0, "UnitPrice": 95.0},
         {"Item": item, "Quantity": 1, "UnitPrice": 10.0}],
        [{"Item": item, "Quantity": 3, "UnitPrice": 95.0},
         {"Item": item, "Quantity": -121, "UnitPrice": 1.0}],  # a correction on a normal invoice
        [{"Item": item, "Quantity": 1, "UnitPrice": 1e300}],
        [{"Item": item, "Quantity": 1, "UnitPrice": 12.5}],
    ]
    for number, lines in enumerate(invoices):
        fields: dict[str, Any] = {"Division": DIVISION, "InvoiceTo": account["ID"], "Type": 8020,
                                  "Status": 50, "Currency": "EUR", "SalesInvoiceLines": lines}
        if number == len(invoices) - 1:
            fields.update(InvoiceDate="9999-12-31T00:00:00", DueDate="9999-12-31T00:00:00")
        _create(stage, "SalesInvoices", fields)


def _create(stage: Stage, entity: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return stage.exact.create(entity, fields)
    except Exception as exc:  # any refusal or crash of the sandbox is noted
        stage.unexercised.append(f"the sandbox refused a bad-input {entity}: "
                                 f"{type(exc).__name__}: {str(exc)[:120]}")
        return None
