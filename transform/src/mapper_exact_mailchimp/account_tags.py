"""An account's cost-center tags gathered from the invoices a first sync's flush computes
orders from, instead of reading every invoice and line back for the members (issue 9).

`tags.account_cost_centers` reads an account's invoices (its `parent` rows, by id) and their
lines (by id) from the store. When every invoice row of the store is dirty, the invoice step
of a flush reads each of them with its lines, in the same order (dirty keys by division and
id, lines by id), so the same tags come out of those reads: built here as the invoices go by,
then handed to the member step of the same flush. Only then; in any other case (a store that
held rows when the run began, orders flushed before the members, an invoice whose raw
InvoiceID/InvoiceTo is not the plain text its stored key came from) the members read the
store as before.
"""

from __future__ import annotations

from typing import Any

from .ingest import link
from .lookup_store import LookupStore
from .settings import MappingSettings
from .tags import add_line_tag

# Accounts with tags held (~300 bytes each: their (tag key, name) pairs, the texts shared
# between accounts; +25 MB RSS on a first sync of 100,000 accounts): past this the gathering
# stops and the members read the store, so memory stays bounded however large the company.
ACCOUNTS_HELD = 150_000
_NO_TAGS: dict[str, str] = {}


class GatheredAccountTags:
    """`known_accounts` of `tags.desired_member_tags`: every account's tags, complete."""

    def __init__(self, store: LookupStore, settings: MappingSettings,
                 cost_centers: dict[tuple[int, str], dict[str, Any] | None]) -> None:
        self._store, self._settings, self._cost_centers = store, settings, cost_centers
        self._tags: dict[tuple[int, str], tuple[tuple[str, str], ...]] = {}
        self._texts: dict[str, str] = {}  # one copy of each tag key and name
        self.usable = True

    def add_invoice(self, division: int, invoice_id: str, invoice: dict[str, Any],
                    lines: list[dict[str, Any]]) -> None:
        """A non-draft invoice (key `invoice_id`) and its lines, as the invoice step read them."""
        if not self.usable:
            return
        account = invoice.get("InvoiceTo")
        if invoice.get("InvoiceID") != invoice_id or not isinstance(account, (str, type(None))) \
                or len(self._tags) >= ACCOUNTS_HELD:
            # The store path would look its lines or account up by other text: leave it all
            # to the store path (never happens with Exact's GUIDs).
            self.usable = False
            self._tags.clear()
            return
        parent = link(account)  # as the ingest stored it
        if parent is None:
            return  # no account's children
        key = (division, parent)
        tags = dict(self._tags.get(key, ()))
        for line in lines:
            add_line_tag(tags, self._store, division, line, self._settings, self._cost_centers)
        if tags:
            text = self._texts.setdefault
            self._tags[key] = tuple((text(k, k), text(v, v)) for k, v in tags.items())

    def get(self, key: tuple[int, str]) -> dict[str, str]:
        # Every invoice went by: an account without an entry has no tag.
        found = self._tags.get(key)
        return dict(found) if found else _NO_TAGS

    def __setitem__(self, key: tuple[int, str], value: dict[str, str]) -> None:
        self._tags[key] = tuple(value.items())  # never needed: `get` always answers
