"""Deterministic demo data: the same seed and size always give the same companies and rows.

Dates lie before a fixed base date (not "now"), so a seed is reproducible on any day. Small
seeds still contain every awkward case the plugins must survive (unicode names, invalid and
shared e-mails, missing e-mails, opted-out contacts, blocked accounts, credit notes, foreign
currencies, inactive cost centers, paid receivables, earlier deletions).
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from array import array
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from exactmc_sandbox.exact.model import Company, Division
from exactmc_sandbox.exact.packed import EPOCH, MICROSECOND, pack, unpack
from exactmc_sandbox.exact.schema import RECEIVABLE_PAID
from exactmc_sandbox.exact.store import SANDBOX_USER_ID, DataStore, Row, receivable_for
from exactmc_sandbox.exact.validation import prepare_create

BASE_DATE = datetime(2025, 6, 1, 10, 0, tzinfo=timezone.utc)

FIRST_NAMES = (
    "Jan", "Pieter", "Sanne", "Emma", "Lucas", "Daan", "Sophie", "Lotte", "Thomas", "Anna",
    "Lukas", "Marie", "Jean", "Elise", "Noah", "Julia", "Finn", "Chloé", "Jürgen", "Björn",
    "Saskia", "Bram", "Fleur", "Zoë", "Åsa", "Ñandú",
)
LAST_NAMES = (
    "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Peeters", "Maes", "Müller", "Schmidt",
    "Dubois", "Janssens", "Müller-Łukasz", "Öztürk", "García", "Nørgaard", "Wouters",
    "Hoffmann", "Claes", "Mulder", "Bos",
)
MIDDLE_NAMES = ("de", "van", "van der", "van den", "ter")
COMPANY_WORDS = ("Handel", "Installatie", "Bakkerij", "Consultancy", "Logistiek", "Techniek",
                 "Bouw", "Design", "Advies", "Import")
COMPANY_FORMS = {"NL": ("B.V.", "BV", "V.O.F."), "BE": ("BVBA", "NV", "BV"),
                 "DE": ("GmbH", "AG", "KG"), "GB": ("Ltd",), "US": ("Inc.", "LLC"),
                 "FR": ("SARL", "SAS")}
CITIES = {
    "NL": ("Amsterdam", "Utrecht", "Rotterdam", "Groningen", "Eindhoven", "'s-Hertogenbosch"),
    "BE": ("Antwerpen", "Gent", "Brussel", "Liège"),
    "DE": ("Berlin", "München", "Köln", "Düsseldorf"),
    "GB": ("London", "Manchester"), "US": ("New York", "Austin"), "FR": ("Paris", "Lyon"),
}
PHONE_PREFIX = {"NL": "+31", "BE": "+32", "DE": "+49", "GB": "+44", "US": "+1", "FR": "+33"}
STREETS = ("Hoofdstraat", "Kerkstraat", "Stationsweg", "Marktplein", "Dorpsstraat",
           "Industrieweg", "Rue de la Gare", "Bahnhofstraße")
PRODUCTS = (("Consulting hour", 95.0), ("Installation", 250.0), ("Maintenance plan", 480.0),
            ("Spare part kit", 39.5), ("Training day", 750.0), ("Software licence", 1200.0),
            ("Support ticket", 60.0), ("Travel costs", 45.0), ("Hardware unit", 329.99),
            ("Cable set", 12.75), ("Design sketch", 180.0), ("Delivery", 25.0))
COST_CENTERS = (("100", "Sales", True), ("200", "Service", True), ("300", "Projects", True),
                ("400", "Webshop", True), ("800", "Old projects", False), ("900", "Legacy", False))


def build(store: DataStore, seed: int, accounts_per_division: int) -> None:
    """Fill `store` with both companies and their rows."""
    rng = random.Random(seed)
    main = Company(id=_uuid(rng), name="Noordzee Handel", region="nl", current_division=101,
                   user_id=SANDBOX_USER_ID, user_name="sandbox@noordzee.example",
                   full_name="Sandbox Gebruiker", email="sandbox@noordzee.example",
                   language="nl-NL")
    second = Company(id=_uuid(rng), name="Ardennes Outdoor", region="be", current_division=201,
                     user_id=_uuid(rng), user_name="admin@ardennes.example",
                     full_name="Ardennes Admin", email="admin@ardennes.example",
                     language="fr-BE")
    specs = [
        (main, [(101, "Noordzee Handel B.V.", "NL", True), (102, "Noordzee Handel België", "BE",
               False), (103, "Noordzee Handel GmbH", "DE", False)]),
        (second, [(201, "Ardennes Outdoor BVBA", "BE", True)]),
    ]
    for company, rows in specs:
        divisions = [
            Division(code=code, description=name, country=country, currency="EUR",
                     company=company, hid=code * 10, main=is_main,
                     created=BASE_DATE - timedelta(days=rng.randint(1000, 3000)),
                     # Row versions start at unrelated values per division, as separate
                     # databases would: a client must keep one bookmark per division.
                     next_timestamp=rng.randrange(1_000_000, 50_000_000))
            for code, name, country, is_main in rows
        ]
        store.add_company(company, divisions)
        for division in divisions:
            if division.code == 103:
                division.move_date = BASE_DATE - timedelta(days=400)
            size = accounts_per_division if company is main else max(5, accounts_per_division // 4)
            DivisionSeeder(store, rng, division).run(size)


class Held:
    """Rows packed end to end in one buffer, in the order made: a division's rows wait here for
    their insert in one block of memory, freed whole (as many small objects they would leave
    the allocator's pools fragmented, and the sandbox's memory as high as its seeding peak)."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.buffer = bytearray()
        self.ends = array("q")
        self.modified = array("q")  # microseconds: the insert order
        for row in rows:
            self.buffer += pack(row, learned=False)  # held briefly: deflated once, when stored
            self.ends.append(len(self.buffer))
            self.modified.append((row["Modified"] - EPOCH) // MICROSECOND)

    def row(self, n: int) -> Row:
        start = self.ends[n - 1] if n else 0
        return unpack(bytes(self.buffer[start:self.ends[n]]))

    def __iter__(self) -> Iterator[Row]:
        return (self.row(n) for n in range(len(self.ends)))

    def in_modified_order(self) -> Iterator[Row]:
        order = sorted(range(len(self.ends)), key=self.modified.__getitem__)  # stable
        return (self.row(n) for n in order)


held = Held


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum() or ch in ".-")


class DivisionSeeder:
    """Generates one division's rows; `run` inserts them in Modified order per entity."""

    def __init__(self, store: DataStore, rng: random.Random, division: Division) -> None:
        self.store = store
        self.rng = rng
        self.division = division
        self.used_emails: list[str] = []

    def new_id(self) -> str:
        return _uuid(self.rng)

    def when(self, after: datetime | None = None) -> datetime:
        start = after or BASE_DATE - timedelta(days=1100)
        span = (BASE_DATE - start).total_seconds()
        return start + timedelta(seconds=int(self.rng.uniform(0, span)))

    def make(self, entity: str, fields: dict[str, Any], created: datetime,
             modified: datetime | None = None) -> Row:
        row = prepare_create(self.store, entity, {**fields, "Division": self.division.code},
                             created, new_id=self.new_id)
        row["Modified"] = modified or self.when(created)
        return row

    def insert_all(self, entity: str, rows: Held) -> None:
        for row in rows.in_modified_order():  # ties: as made
            self.store.insert(entity, row)

    def run(self, size: int) -> None:
        items = [self.make("Items", {"Code": f"ITEM-{n:03d}", "Description": name,
                                     "StandardSalesPrice": price}, self.when())
                 for n, (name, price) in enumerate(PRODUCTS, start=1)]
        self.insert_all("Items", held(items))
        centers = [self.make("Costcenters", {"Code": code, "Description": text, "Active": active},
                             self.when()) for code, text, active in COST_CENTERS]
        self.insert_all("Costcenters", held(centers))
        # Rows wait for their division's insert packed (a division's rows as dicts would
        # double the sandbox's peak memory); the generation order is the seed's.
        accounts = held(self.account(n) for n in range(size))
        self.insert_all("Accounts", accounts)
        contacts = held(c for n, a in enumerate(accounts) for c in self.contacts(n, a))
        self.insert_all("Contacts", contacts)
        del contacts
        invoices = held(i for a in accounts if a["Status"] == "C"
                        for i in self.invoices(a, items))
        del accounts
        self.insert_all("SalesInvoices", invoices)
        receivables = held(self.receivable(i) for i in invoices if i["Status"] == 50)
        del invoices
        self.insert_all("Receivables", receivables)
        self.deletions(max(3, size // 20))

    def account(self, n: int) -> Row:
        rng = self.rng
        home = self.division.country
        country = home if rng.random() < 0.8 else rng.choice(("NL", "BE", "DE", "GB", "US", "FR"))
        last = rng.choice(LAST_NAMES)
        word = rng.choice(COMPANY_WORDS)
        name = f"{word} {last} {rng.choice(COMPANY_FORMS[country])}"
        domain = f"{_ascii(word + last)}.example"
        prefix = PHONE_PREFIX[country]
        status = "P" if (n % 4 == 3) else "C"
        created = self.when()
        return self.make("Accounts", {
            "Name": name, "Email": f"info@{domain}" if rng.random() < 0.7 else None,
            "Phone": f"{prefix} {rng.randint(10, 99)} {rng.randint(1000000, 9999999)}",
            "Website": f"https://www.{domain}", "AddressLine1": f"{rng.choice(STREETS)} "
            f"{rng.randint(1, 250)}", "City": rng.choice(CITIES[country]),
            "Postcode": self.postcode(country), "Country": country, "Status": status,
            "Blocked": n == 7 or rng.random() < 0.03,
            "Language": {"NL": "NL", "BE": rng.choice(("NL", "FR")), "DE": "DE"}.get(country, "EN"),
            "VATNumber": f"{country}{rng.randint(10**8, 10**9 - 1)}B01" if status == "C" else None,
        }, created)

    def postcode(self, country: str) -> str:
        rng = self.rng
        if country == "NL":
            return f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}" \
                   f"{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}"
        if country == "GB":
            return f"SW{rng.randint(1, 20)} {rng.randint(1, 9)}AA"
        return str(rng.randint(1000, 9999) if country == "BE" else rng.randint(10000, 99999))

    def contacts(self, n: int, account: Row) -> list[Row]:
        rng = self.rng
        count = 1 if n < 12 else rng.choice((0, 1, 1, 2, 2, 3))
        if n == 9:
            count = 2  # two contacts of one account sharing an e-mail address
        rows = []
        for k in range(count):
            first, middle, last = self.person(n, k)
            email = self.email(n, k, first, last, account)
            rows.append(self.make("Contacts", {
                "Account": account["ID"], "FirstName": first, "MiddleName": middle,
                "LastName": last, "Email": email,
                "BusinessEmail": email if email and rng.random() < 0.5 else None,
                "Phone": account["Phone"], "Mobile": f"+31 6 {rng.randint(10000000, 99999999)}"
                if rng.random() < 0.5 else None,
                "IsMailingExcluded": n == 6 or rng.random() < 0.08, "IsMainContact": k == 0,
                "Language": account["Language"],
            }, self.when(account["Created"])))
        return rows

    def person(self, n: int, k: int) -> tuple[str, str | None, str]:
        fixed = {0: ("Zoë", None, "Müller-Łukasz"), 1: ("Åsa", None, "Lindqvist"),
                 2: ("Ñandú", None, "Pérez")}
        if k == 0 and n in fixed:
            return fixed[n]
        rng = self.rng
        middle = rng.choice(MIDDLE_NAMES) if rng.random() < 0.15 else None
        return rng.choice(FIRST_NAMES), middle, rng.choice(LAST_NAMES)

    def email(self, n: int, k: int, first: str, last: str, account: Row) -> str | None:
        rng = self.rng
        special = {3: "jan@@example", 4: "no-at-sign", 5: None}
        if k == 0 and n in special:
            return special[n]
        if (n == 8 and k == 0) or (n == 9 and k == 1):
            return self.used_emails[0]  # shared across accounts / within one account
        roll = rng.random()
        if roll < 0.06:
            return None
        if roll < 0.09 and self.used_emails:
            return rng.choice(self.used_emails)
        if roll < 0.11:
            return rng.choice(("jan@@example", "no-at-sign", "piet@", "@example.com"))
        domain = (account["Website"] or "www.mail.example").split("www.", 1)[-1]
        email = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 999)}@{domain}"
        if roll > 0.97:
            email = f" {email.upper()} "  # sloppy data entry: case and surrounding spaces
        self.used_emails.append(email)
        return email

    def invoices(self, account: Row, items: list[Row]) -> list[Row]:
        rng = self.rng
        rows = []
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
            kind = 8021 if rng.random() < 0.1 else 8020
            currency = rng.choices(("EUR", "GBP", "USD"), weights=(85, 8, 7))[0]
            status = rng.choices((50, 20, 10), weights=(85, 10, 5))[0]
            created = self.when(account["Created"])
            lines = [{"Item": item["ID"], "Quantity": float(rng.randint(1, 10)),
                      "CostCenter": rng.choice(COST_CENTERS[:4])[0]}
                     for item in rng.sample(items, rng.randint(1, 4))]
            rows.append(self.make("SalesInvoices", {
                "InvoiceTo": account["ID"], "Type": kind, "Currency": currency, "Status": status,
                "Description": "Credit note" if kind == 8021 else f"Invoice {created:%B %Y}",
                "YourRef": f"PO-{rng.randint(1000, 9999)}" if rng.random() < 0.4 else None,
                "SalesInvoiceLines": lines,
            }, created))
        return rows

    def receivable(self, invoice: Row) -> Row:
        row = receivable_for(self.store, invoice, invoice["Modified"])
        row["ID"] = self.new_id()
        if self.rng.random() < 0.55:
            paid = self.when(invoice["Modified"])
            row.update(IsFullyPaid=True, LastPaymentDate=paid, Status=RECEIVABLE_PAID,
                       Modified=paid)
        return row

    def deletions(self, count: int) -> None:
        stamps = sorted(self.when() for _ in range(count))
        for deleted_at in stamps:
            self.store.insert_deleted({
                "ID": self.new_id(), "EntityKey": self.new_id(),
                "EntityType": self.rng.choice((2, 5, 5, 13, 9)), "DeletedBy": SANDBOX_USER_ID,
                "DeletedDate": deleted_at, "Division": self.division.code,
            })
