"""Turn create/update bodies into complete rows, refusing bad input with a clear message."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from exactmc_sandbox.exact.dates import parse_iso, storable
from exactmc_sandbox.exact.schema import (
    ACCOUNT_STATUSES,
    COUNTRY_NAMES,
    ENTITY_FIELDS,
    INVOICE_LINE_FIELDS,
    INVOICE_STATUSES,
    INVOICE_TYPES,
    READ_ONLY_FIELDS,
    RECEIVABLE_OPEN,
)

if TYPE_CHECKING:
    from exactmc_sandbox.exact.model import Division
    from exactmc_sandbox.exact.store import DataStore

Row = dict[str, Any]
IdFactory = Callable[[], str]

DATE_FIELDS = {"Created", "Modified", "InvoiceDate", "DueDate", "LastPaymentDate", "DeletedDate"}
VAT_RATES = {"NL": 0.21, "BE": 0.21, "DE": 0.19}
# Fixed rates to the division currency (EUR) keep amounts deterministic.
EXCHANGE_RATES = {"EUR": 1.0, "GBP": 1.17, "USD": 0.92}
CREDIT_TYPES = {8021, 8024}
LINE_INPUT_FIELDS = {"Item", "Quantity", "UnitPrice", "CostCenter", "Description"}
AMOUNT_FIELDS = ("AmountDC", "AmountFC", "AmountFCExclVat", "VATAmountFC", "VATAmountDC",
                 "TransactionAmountDC", "StandardSalesPrice")


class InvalidInputError(ValueError):
    """A create/update body the simulator refuses (the message says why)."""


def new_uuid() -> str:
    return str(uuid.uuid4())


def prepare_create(
    store: DataStore, entity: str, fields: dict[str, Any], now: datetime,
    new_id: IdFactory = new_uuid,
) -> Row:
    if entity not in ENTITY_FIELDS:
        raise InvalidInputError(f"unknown entity {entity!r}; known: {sorted(ENTITY_FIELDS)}")
    if not isinstance(fields, dict):
        raise InvalidInputError("the body must be a JSON object")
    fields = dict(fields)
    division = _division(store, fields.pop("Division", None))
    lines = fields.pop("SalesInvoiceLines", None) if entity == "SalesInvoices" else None
    row: Row = {name: None for name in ENTITY_FIELDS[entity]}
    row.update(_defaults(entity, division))
    row.update(_converted(entity, fields))
    row["InvoiceID" if entity == "SalesInvoices" else "ID"] = new_id()
    row.update(Created=now, Modified=now, Division=division.code)
    if entity == "SalesInvoices":
        if not lines:
            raise InvalidInputError("a sales invoice needs SalesInvoiceLines (at least one)")
        row["SalesInvoiceLines"] = _lines(store, row, lines, new_id)
        if row["InvoiceNumber"] is None:
            row["InvoiceNumber"] = store.next_invoice_number(division.code)
    if entity == "Accounts" and row["Code"] is None:
        row["Code"] = store.next_account_code(division.code)
    _finish(store, entity, row, division)
    return row


def prepare_update(
    store: DataStore, entity: str, row: Row, fields: dict[str, Any], now: datetime
) -> None:
    """Validate first, then apply, so a refused update changes nothing."""
    if not isinstance(fields, dict):
        raise InvalidInputError("the body must be a JSON object")
    fields = dict(fields)
    if "Division" in fields and fields.pop("Division") != row["Division"]:
        raise InvalidInputError("Division cannot change; delete and create instead")
    lines = fields.pop("SalesInvoiceLines", None) if entity == "SalesInvoices" else None
    candidate = dict(row)
    candidate.update(_converted(entity, fields))
    division = store.division(row["Division"])
    if lines is not None:
        if not lines:
            raise InvalidInputError("SalesInvoiceLines cannot be empty")
        candidate["SalesInvoiceLines"] = _lines(store, candidate, lines, new_uuid)
    elif entity == "SalesInvoices":
        candidate["SalesInvoiceLines"] = [dict(line) for line in row["SalesInvoiceLines"]]
    _finish(store, entity, candidate, division)
    row.update(candidate)


def _finish(store: DataStore, entity: str, row: Row, division: Division) -> None:
    """Complete and check a row; every date and amount it ends with must be one Exact keeps."""
    try:
        _FINISHERS[entity](store, row, division)
    except OverflowError:  # DueDate = InvoiceDate + 30 days past year 9999; 10**400 × a price
        raise InvalidInputError("a date or amount computed from this input is out of range"
                                ) from None
    for name in DATE_FIELDS:
        value = row.get(name)
        if isinstance(value, datetime) and not storable(value):
            raise InvalidInputError(
                f"{name}: {value.date().isoformat()} is outside the dates Exact keeps "
                "(1753-01-01 to 9999-12-31)")
    for line in row.get("SalesInvoiceLines") or []:
        _require_finite(line, f"line {line['LineNumber']}: ", "AmountFC", "VATAmountFC", "AmountDC")
    _require_finite(row, "", *(name for name in AMOUNT_FIELDS if name in row))


def _division(store: DataStore, code: Any) -> Division:
    if not isinstance(code, int) or code not in store.divisions:
        raise InvalidInputError(f"Division must be one of {sorted(store.divisions)}, got {code!r}")
    return store.divisions[code]


def _converted(entity: str, fields: dict[str, Any]) -> Row:
    allowed = set(ENTITY_FIELDS[entity]) - READ_ONLY_FIELDS
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidInputError(f"{entity}: unknown or read-only field(s) {unknown}")
    out: Row = {}
    for name, value in fields.items():
        if name in DATE_FIELDS and value is not None:
            try:
                value = parse_iso(str(value))
            except (ValueError, OverflowError) as exc:  # overflow: a zone pushes it past year 1
                raise InvalidInputError(f"{name}: not an ISO-8601 date: {value!r}") from exc
        out[name] = value
    return out


def _defaults(entity: str, division: Division) -> Row:
    if entity == "Accounts":
        return {"Status": "C", "Blocked": False, "IsSales": True, "Type": "A",
                "Country": division.country}
    if entity == "Contacts":
        return {"IsMailingExcluded": False, "IsMainContact": False}
    if entity == "SalesInvoices":
        return {"Currency": "EUR", "Type": 8020, "Status": 50}
    if entity == "Costcenters":
        return {"Active": True}
    if entity == "Items":
        return {"IsSalesItem": True, "StandardSalesPrice": 0.0, "Unit": "pc"}
    if entity == "Receivables":
        return {"IsFullyPaid": False, "Status": RECEIVABLE_OPEN, "Currency": "EUR"}
    return {}


def _require_text(row: Row, *names: str) -> None:
    for name in names:
        if not isinstance(row.get(name), str) or not row[name].strip():
            raise InvalidInputError(f"{name} is required (non-empty text)")


def _account_in(store: DataStore, key: Any, division: Division, field: str) -> Row:
    if not isinstance(key, str):
        raise InvalidInputError(f"{field} must be an account ID")
    try:
        account = store.get("Accounts", key)
    except KeyError:
        raise InvalidInputError(f"{field}: no account {key}") from None
    if account["Division"] != division.code:
        raise InvalidInputError(f"{field}: account {key} is not in division {division.code}")
    return account


def _finish_account(store: DataStore, row: Row, division: Division) -> None:
    _require_text(row, "Name")
    if row["Status"] not in ACCOUNT_STATUSES:
        raise InvalidInputError(f"Status must be one of {sorted(ACCOUNT_STATUSES)}")
    code = str(row["Code"]).strip()
    if not code or len(code) > 18:
        raise InvalidInputError("Code must be 1-18 characters")
    row["Code"] = code.rjust(18)  # Exact pads codes to 18 characters with leading spaces
    row["CountryName"] = COUNTRY_NAMES.get(row["Country"] or "", row["Country"])


def _finish_contact(store: DataStore, row: Row, division: Division) -> None:
    account = _account_in(store, row["Account"], division, "Account")
    row["Account"] = account["ID"]
    row["AccountName"] = account["Name"]
    if not (row["FirstName"] or row["LastName"]):
        raise InvalidInputError("a contact needs a FirstName or a LastName")
    for flag in ("IsMailingExcluded", "IsMainContact"):
        if not isinstance(row[flag], bool):
            raise InvalidInputError(f"{flag} must be true or false")
    parts = (row["FirstName"], row["MiddleName"], row["LastName"])
    row["FullName"] = " ".join(p for p in parts if p)


def _finish_invoice(store: DataStore, row: Row, division: Division) -> None:
    account = _account_in(store, row["InvoiceTo"], division, "InvoiceTo")
    row["InvoiceTo"] = account["ID"]
    row["InvoiceToName"] = account["Name"]
    row["OrderedBy"] = row["OrderedBy"] or account["ID"]
    row["DeliverTo"] = row["DeliverTo"] or account["ID"]
    row["OrderedByName"] = store.get("Accounts", row["OrderedBy"])["Name"]
    if row["Type"] not in INVOICE_TYPES:
        raise InvalidInputError(f"Type must be one of {sorted(INVOICE_TYPES)}")
    if row["Status"] not in INVOICE_STATUSES:
        raise InvalidInputError(f"Status must be one of {sorted(INVOICE_STATUSES)}")
    if row["Currency"] not in EXCHANGE_RATES:
        raise InvalidInputError(f"Currency must be one of {sorted(EXCHANGE_RATES)}")
    row["InvoiceDate"] = row["InvoiceDate"] or row["Created"]
    row["DueDate"] = row["DueDate"] or row["InvoiceDate"] + timedelta(days=30)
    _compute_amounts(row, division)


def _lines(store: DataStore, invoice: Row, lines: Any, new_id: IdFactory) -> list[Row]:
    if not isinstance(lines, list):
        raise InvalidInputError("SalesInvoiceLines must be a list")
    division = store.division(invoice["Division"])
    built = []
    for number, given in enumerate(lines, start=1):
        if not isinstance(given, dict):
            raise InvalidInputError("each sales invoice line must be an object")
        unknown = sorted(set(given) - LINE_INPUT_FIELDS)
        if unknown:
            raise InvalidInputError(f"SalesInvoiceLines: unknown or read-only field(s) {unknown}")
        line: Row = {name: None for name in INVOICE_LINE_FIELDS}
        line.update(ID=new_id(), InvoiceID=invoice["InvoiceID"], LineNumber=number,
                    Division=division.code, Quantity=1.0)
        line.update(given)
        if line["Item"] is not None:
            item = _item_in(store, line["Item"], division)
            line.update(Item=item["ID"], ItemCode=item["Code"], ItemDescription=item["Description"])
            if line["UnitPrice"] is None:
                line["UnitPrice"] = item["StandardSalesPrice"]
            line["Description"] = line["Description"] or item["Description"]
        if line["CostCenter"] is not None:
            line["CostCenterDescription"] = _costcenter_description(store, line["CostCenter"],
                                                                    division)
        for name in ("Quantity", "UnitPrice"):
            if not isinstance(line[name], int | float) or isinstance(line[name], bool):
                raise InvalidInputError(f"line {number}: {name} must be a number")
        _require_finite(line, f"line {number}: ", "Quantity", "UnitPrice")
        built.append(line)
    return built


def _require_finite(row: Row, where: str, *names: str) -> None:
    # JSON bodies may carry NaN or Infinity, and huge inputs overflow to inf when multiplied.
    for name in names:
        value = row.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"{where}{name} is out of range")


def _item_in(store: DataStore, key: Any, division: Division) -> Row:
    try:
        item = store.get("Items", str(key))
    except KeyError:
        raise InvalidInputError(f"Item: no item {key}") from None
    if item["Division"] != division.code:
        raise InvalidInputError(f"Item {key} is not in division {division.code}")
    return item


def _costcenter_description(store: DataStore, code: Any, division: Division) -> str:
    for center in store.table("Costcenters", division.code).values():
        if center["Code"] == code:
            return center["Description"]
    raise InvalidInputError(f"CostCenter: no cost center with Code {code!r}")


def _compute_amounts(row: Row, division: Division) -> None:
    credit = row["Type"] in CREDIT_TYPES
    rate = EXCHANGE_RATES[row["Currency"]]
    vat = VAT_RATES.get(division.country, 0.21)
    for line in row["SalesInvoiceLines"]:
        # A credit note's lines count negative whatever sign was typed; on an invoice a negative
        # quantity (a return line) stays negative, as Exact computes Quantity × UnitPrice.
        quantity = -abs(line["Quantity"]) if credit else line["Quantity"]
        amount = round(quantity * line["UnitPrice"], 2)
        line["AmountFC"] = amount
        line["VATAmountFC"] = round(amount * vat, 2)
        line["AmountDC"] = round(amount * rate, 2)
    excl = round(sum(line["AmountFC"] for line in row["SalesInvoiceLines"]), 2)
    vat_fc = round(sum(line["VATAmountFC"] for line in row["SalesInvoiceLines"]), 2)
    row.update(AmountFCExclVat=excl, VATAmountFC=vat_fc, AmountFC=round(excl + vat_fc, 2))
    row["AmountDC"] = round(row["AmountFC"] * rate, 2)
    row["VATAmountDC"] = round(vat_fc * rate, 2)


def _finish_costcenter(store: DataStore, row: Row, division: Division) -> None:
    _require_text(row, "Code", "Description")
    if not isinstance(row["Active"], bool):
        raise InvalidInputError("Active must be true or false")
    code = row["Code"].strip().lower()
    for other in store.table("Costcenters", division.code).values():
        if other["ID"] != row["ID"] and str(other["Code"]).strip().lower() == code:
            # Exact: a cost center's Code is unique in its division.
            raise InvalidInputError(f"Code {row['Code']!r} already exists")


def _finish_item(store: DataStore, row: Row, division: Division) -> None:
    _require_text(row, "Code", "Description")


def _finish_receivable(store: DataStore, row: Row, division: Division) -> None:
    account = _account_in(store, row["Account"], division, "Account")
    row.update(Account=account["ID"], AccountCode=account["Code"], AccountName=account["Name"])
    if not isinstance(row["AmountDC"], int | float):
        raise InvalidInputError("AmountDC must be a number")
    row["TransactionAmountDC"] = row["TransactionAmountDC"] or row["AmountDC"]
    row["EntryNumber"] = row["EntryNumber"] or row["InvoiceNumber"]


_FINISHERS: dict[str, Callable[[DataStore, Row, Division], None]] = {
    "Accounts": _finish_account,
    "Contacts": _finish_contact,
    "SalesInvoices": _finish_invoice,
    "Costcenters": _finish_costcenter,
    "Items": _finish_item,
    "Receivables": _finish_receivable,
}
