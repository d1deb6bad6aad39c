"""Builders of Exact-shaped tap messages and helpers reading the mapper's output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mapper_exact_mailchimp import store
from mapper_exact_mailchimp.rejections import read_rejections
from mapper_exact_mailchimp.store import Database
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

DIVISION = 101


def guid(n: int) -> str:
    return f"7f3c2a10-0000-4000-8000-{n:012d}"


def account(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "ID": guid(n), "Code": f"{n:>18}".strip(), "Name": f"Bakkerij {n} BV",
        "Email": f"info@bakkerij{n}.nl", "Phone": "+31 20 555 0101",
        "AddressLine1": "Damrak 1", "AddressLine2": "2e etage", "AddressLine3": None,
        "City": "Amsterdam", "Postcode": "1012 LG", "State": "NH", "Country": "NL",
        "CountryName": "Netherlands", "Language": "NL", "Status": "C", "Blocked": False,
        "IsSales": True, "Type": "A", "VATNumber": "NL001234567B01",
        "Created": "2023-01-05T09:00:00+00:00", "Modified": "2024-03-01T10:00:00+00:00",
        "Division": DIVISION, "Timestamp": 1000 + n,
    } | fields


def contact(n: int, account_n: int, **fields: Any) -> dict[str, Any]:
    return {
        "ID": guid(10_000 + n), "Account": guid(account_n), "AccountName": f"Bakkerij {account_n}",
        "FirstName": "Jan", "MiddleName": "van", "LastName": "Dijk", "FullName": "Jan van Dijk",
        "Email": f"Jan.Contact{n}@Example.NL ", "BusinessEmail": None, "Phone": "+31 6 1234 5678",
        "Mobile": None, "IsMailingExcluded": False, "IsMainContact": True, "Language": None,
        "Created": "2023-02-01T09:00:00+00:00", "Modified": "2024-02-01T10:00:00+00:00",
        "Division": DIVISION, "Timestamp": 2000 + n,
    } | fields


def invoice(n: int, account_n: int, **fields: Any) -> dict[str, Any]:
    return {
        "InvoiceID": guid(20_000 + n), "InvoiceNumber": 24000000 + n, "InvoiceTo": guid(account_n),
        "InvoiceToName": f"Bakkerij {account_n} BV", "OrderedBy": guid(account_n),
        "DeliverTo": guid(account_n), "AmountDC": 121.0, "AmountFC": 121.0,
        "AmountFCExclVat": 100.0, "VATAmountFC": 21.0, "Currency": "EUR",
        "InvoiceDate": "2024-03-10T00:00:00+00:00", "DueDate": "2024-04-09T00:00:00+00:00",
        "Status": 50, "Type": 8020, "Description": "Levering maart", "YourRef": None,
        "Created": "2024-03-10T08:00:00+00:00", "Modified": "2024-03-10T08:00:00+00:00",
        "Division": DIVISION, "Timestamp": 3000 + n,
    } | fields


def line(n: int, invoice_n: int, cost_center: str | None = "100", **fields: Any) -> dict[str, Any]:
    return {
        "ID": guid(30_000 + n), "InvoiceID": guid(20_000 + invoice_n), "LineNumber": 1,
        "Item": guid(40_000 + n % 3), "ItemCode": f"BROOD{n % 3}",
        "ItemDescription": f"Volkorenbrood {n % 3}", "Quantity": 2.0, "UnitPrice": 50.0,
        "AmountFC": 100.0, "AmountDC": 100.0, "VATAmountFC": 21.0, "CostCenter": cost_center,
        "CostCenterDescription": {"100": "Retail", "200": "Horeca"}.get(cost_center or ""),
        "Description": "Brood", "Division": DIVISION,
        "Timestamp": 3000 + invoice_n,
    } | fields


def cost_center(code: str, description: str, **fields: Any) -> dict[str, Any]:
    return {
        "ID": guid(50_000 + int(code)), "Code": code, "Description": description, "Active": True,
        "Created": "2022-01-01T00:00:00+00:00", "Modified": "2024-01-01T00:00:00+00:00",
        "Division": DIVISION,
    } | fields


def receivable(n: int, invoice_n: int, account_n: int, paid: bool, **fields: Any) -> dict[str, Any]:
    return {
        "ID": guid(60_000 + n), "InvoiceNumber": 24000000 + invoice_n, "AccountId": guid(account_n),
        "Currency": "EUR", "EntryNumber": 24000000 + invoice_n, "AmountDC": 121.0,
        "TransactionAmountDC": 121.0, "IsFullyPaid": paid,
        "LastPaymentDate": "2024-03-20T00:00:00+00:00" if paid else None,
        "Status": 30 if paid else 20, "Modified": "2024-03-20T09:00:00+00:00" if paid
        else "2024-03-10T09:00:00+00:00", "Division": DIVISION,
    } | fields


def deletion(n: int, entity_type: int, key: str) -> dict[str, Any]:
    return {
        "ID": guid(70_000 + n), "EntityType": entity_type, "EntityKey": key,
        "DeletedBy": guid(1), "DeletedDate": "2024-04-01T12:00:00+00:00",
        "Division": DIVISION, "Timestamp": 9000 + n,
    }


def rec(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": record}


def state(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


def schema(stream: str, key: str = "ID") -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": {"type": "object", "properties": {}},
            "key_properties": [key]}


def member_inputs_read() -> list[dict[str, Any]]:
    """SCHEMAs of the streams besides accounts and contacts that members are computed from
    (and receivables, to move past them): once the tap has moved past them, a STATE releases
    the members read before it. Until then members wait, so each goes out once per run."""
    streams = ("deletions", "sales_invoices", "sales_invoice_lines", "cost_centers",
               "receivables")
    return [schema(stream) for stream in streams]


class CollectingWriter(SimpleSingerWriter):
    """Keeps written messages as the JSON a target would parse."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def write_message(self, message: Any) -> None:
        self.messages.append(json.loads(self.format_message(message)))


class Output(list):
    """The messages of one run, with helpers to pick out records."""

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [m["record"] for m in self
                if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)]

    def by_key(self, stream: str, key: str = "id") -> dict[str, dict[str, Any]]:
        return {r[key]: r for r in self.records(stream)}


Runner = Callable[..., Output]


def tap_run(streams: dict[str, list[dict[str, Any]]], bookmark: int = 1,
            echo: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Messages as a singer-sdk tap sends them: the echoed saved state first (when there is
    one), then per stream its SCHEMA, records and a STATE."""
    messages: list[dict[str, Any]] = [state(echo)] if echo else []
    bookmarks = dict((echo or {}).get("bookmarks", {}))
    for stream, records in streams.items():
        messages.append(schema(stream))
        messages += [rec(stream, r) for r in records]
        bookmarks[stream] = {"replication_key_value": bookmark}
        messages.append(state({"bookmarks": dict(bookmarks)}))
    return messages


def final_state(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return [m for m in messages if m["type"] == "STATE"][-1]["value"]


def fresh_store(config: dict[str, Any], name: str) -> dict[str, Any]:
    """`config` with another, empty store on the same backend."""
    if "lookup_store_path" in config:
        return config | {"lookup_store_path": f"{config['lookup_store_path']}.{name}"}
    return config | {"store_namespace": f"{config['store_namespace']}_{name}"}


@contextmanager
def opened_store(config: dict[str, Any]) -> Iterator[Database]:
    """The store of a mapper run with `config` (what the mapper itself opens)."""
    db = store.open_store(config.get("store_url") or config.get("lookup_store_path"),
                          config.get("store_namespace", store.DEFAULT_NAMESPACE))
    try:
        yield db
    finally:
        db.rollback()
        db.close()
        db.engine.dispose()


def dead_letters(config: dict[str, Any]) -> list[dict[str, Any]]:
    with opened_store(config) as db:
        return read_rejections(db)
