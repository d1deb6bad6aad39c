"""The simulator's in-memory account: audiences, their members, merge fields, tags and stores.

One re-entrant lock guards everything; handlers hold it only while touching state.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from exactmc_sandbox.mailchimp.clock import Clock
from exactmc_sandbox.mailchimp.packed import PackedRecords, pack, unpack

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")


@dataclass
class MergeField:
    merge_id: int
    tag: str
    name: str
    type: str
    required: bool = False
    default_value: str = ""
    public: bool = False
    display_order: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    help_text: str = ""

    def to_api(self, list_id: str) -> dict[str, Any]:
        return {
            "merge_id": self.merge_id, "tag": self.tag, "name": self.name, "type": self.type,
            "required": self.required, "default_value": self.default_value,
            "public": self.public, "display_order": self.display_order,
            "options": self.options, "help_text": self.help_text, "list_id": list_id,
        }


@dataclass
class Segment:
    """A static segment; Mailchimp tags are exactly these."""

    id: int
    name: str
    created_at: str
    updated_at: str


# Bumped by every member write (any member, any audience; writers hold the state lock): a
# cached filtered read is valid while this and the audience's size are unchanged (issue 9:
# see `AudienceList.filtered`). A hook on every attribute assignment cost 7 µs per new member.
_member_writes = [0]


def members_changed() -> None:
    """Call after assigning any member's status, last_changed, timestamp_opt/_signup or email
    outside `MemberWriter` (whose writes call it)."""
    _member_writes[0] += 1

# Random per process, as the ids were: they look random and differ between sandboxes.
_ID_KEY = secrets.token_bytes(16)
_MEMBER_SERIALS = itertools.count(1)


@dataclass(slots=True)  # no per-member __dict__ (issue 9)
class Member:
    email_address: str
    status: str
    created_at: str
    last_changed: str
    # Held packed (packed.py); read and assign through `merge_fields`, never mutate in place.
    packed_merge_fields: bytes = b"{}"
    # Tags as one flat tuple (segment id, date added, ...): a dict per member cost ~220 bytes,
    # 22 MB at 100k accounts (issue 9). Read through `tags`/`has_tag`, assign through `tags`.
    tag_pairs: tuple[Any, ...] = ()
    language: str = ""
    vip: bool = False
    email_type: str = "html"
    ip_signup: str = ""
    timestamp_signup: str = ""
    timestamp_opt: str = ""
    unsubscribe_reason: str = ""
    # The status an archived member had, so re-adding never launders an opt-out.
    status_before_archive: str | None = None
    # Its ids (unique_email_id, contact_id, web_id) are derived from this, not held (issue 9).
    serial: int = field(default_factory=lambda: next(_MEMBER_SERIALS))

    @property
    def merge_fields(self) -> dict[str, Any]:
        """A fresh copy of the member's merge field values (tag -> value)."""
        return unpack(self.packed_merge_fields)

    @merge_fields.setter
    def merge_fields(self, values: dict[str, Any]) -> None:
        self.packed_merge_fields = pack(values)

    @property
    def tags(self) -> dict[int, str]:
        """A fresh copy: segment id -> date added, first added first."""
        pairs = self.tag_pairs
        return dict(zip(pairs[::2], pairs[1::2], strict=True))

    @tags.setter
    def tags(self, tags: dict[int, str]) -> None:
        self.tag_pairs = tuple(item for pair in tags.items() for item in pair)

    def has_tag(self, segment_id: int) -> bool:
        return segment_id in self.tag_pairs[::2]

    def _id_bytes(self, size: int, purpose: bytes) -> bytes:
        return hashlib.blake2b(purpose + self.serial.to_bytes(8, "big"), key=_ID_KEY,
                               digest_size=size).digest()

    @property
    def unique_email_id(self) -> str:
        return self._id_bytes(5, b"u").hex()

    @property
    def contact_id(self) -> str:
        return self._id_bytes(16, b"c").hex()

    @property
    def web_id(self) -> int:
        return int.from_bytes(self._id_bytes(8, b"w"), "big") % 10**9


@dataclass
class AudienceList:
    id: str
    name: str
    date_created: str
    merge_fields: dict[int, MergeField] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)  # subscriber hash -> member
    forgotten: set[str] = field(default_factory=set)  # hashes permanently deleted
    segments: dict[int, Segment] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    web_id: int = field(default_factory=lambda: secrets.randbelow(10**6))
    # (filter key) -> (version, members): the last few filtered member reads (see `filtered`).
    _filtered: dict[Any, tuple[Any, list[Member]]] = field(default_factory=dict, repr=False,
                                                         compare=False)
    _by_tag: dict[str, MergeField] = field(default_factory=dict, repr=False, compare=False)

    def filtered(self, key: Any, compute: Callable[[], list[Member]]) -> list[Member]:
        """`compute()` (members in answer order; callers hold the state lock), reused while no
        member was added, removed or written (`members_changed`): paging through a read of
        100k members cost a scan of the audience per page (issue 9). Never mutate the list."""
        version = (_member_writes[0], len(self.members))
        cached = self._filtered.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        members = compute()
        if len(self._filtered) >= 4:  # a few readers paging at once (target, tap)
            self._filtered.pop(next(iter(self._filtered)))
        self._filtered[key] = (version, members)
        return members

    def merge_field_by_tag(self, tag: str) -> MergeField | None:
        # Remembered per tag and checked on use (still this audience's field, still this tag:
        # fields are added, renamed and deleted in place); tags are unique in an audience.
        # A scan per value cost ~1.5 µs, 8 values a member (issue 9).
        found = self._by_tag.get(tag)
        if found is not None and found.tag == tag and self.merge_fields.get(
                found.merge_id) is found:
            return found
        found = next((f for f in self.merge_fields.values() if f.tag == tag), None)
        if found is not None:
            self._by_tag[tag] = found
        return found

    def segment_by_name(self, name: str) -> Segment | None:
        lowered = name.lower()
        return next((s for s in self.segments.values() if s.name.lower() == lowered), None)


def counts_toward_spend(order: dict[str, Any]) -> bool:
    """Our choice (unconfirmed): cancelled and refunded orders count neither as orders nor spend."""
    return not order.get("cancelled_at_foreign") and order.get("financial_status") not in (
        "cancelled", "refunded")


class OrderTable(PackedRecords):
    """A store's orders by id (held packed), indexed by customer id on every write (UserDict
    routes every mutation through `__setitem__`/`__delitem__`), so a customer's totals and order
    list cost that customer's orders, not the store's (issue 9: a scan per write made big syncs
    quadratic).

    The index holds, under the customer's id interned (the same string the store's customers
    are keyed by), one flat tuple (order id, spend, order id, spend, ...), first created first:
    spend is the order's total as a float when it counts toward the customer's totals, else
    None, so totals need no order decoded (issue 9: that was a tenth of the sandbox's CPU in a
    first sync). A dict and an id copy per customer cost ~200 bytes, 20 MB at 100k."""

    def __init__(self) -> None:
        self._by_customer: dict[str, tuple[Any, ...]] = {}
        super().__init__()

    def __setitem__(self, order_id: str, order: dict[str, Any]) -> None:
        old = self.data.get(order_id)
        customer_id = sys.intern(str(order["customer"]["id"]))
        if old is not None and unpack(old)["customer"]["id"] != customer_id:
            self._unindex(order_id)
        super().__setitem__(order_id, order)
        spend = float(order["order_total"]) if counts_toward_spend(order) else None
        indexed = self._by_customer.get(customer_id, ())
        ids = indexed[::2]
        if order_id in ids:
            at = 2 * ids.index(order_id)
            self._by_customer[customer_id] = (*indexed[:at + 1], spend, *indexed[at + 2:])
        else:
            self._by_customer[customer_id] = (*indexed, order_id, spend)

    def __delitem__(self, order_id: str) -> None:
        self._unindex(order_id)
        del self.data[order_id]

    def _unindex(self, order_id: str) -> None:
        customer_id = self[order_id]["customer"]["id"]
        indexed = self._by_customer.get(customer_id, ())
        rest = tuple(item for at in range(0, len(indexed), 2) if indexed[at] != order_id
                     for item in indexed[at:at + 2])
        if not rest:
            self._by_customer.pop(customer_id, None)
        else:
            self._by_customer[customer_id] = rest

    def of_customer(self, customer_id: str) -> Iterator[dict[str, Any]]:
        """The customer's orders, first created first."""
        for order_id in self._by_customer.get(customer_id, ())[::2]:
            yield self[order_id]

    def spend_of(self, customer_id: str) -> list[float]:
        """The totals of the customer's orders that count toward spend, first created first."""
        return [spend for spend in self._by_customer.get(customer_id, ())[1::2]
                if spend is not None]


@dataclass
class Store:
    id: str
    list_id: str
    name: str
    currency_code: str
    created_at: str
    updated_at: str
    extra: dict[str, Any] = field(default_factory=dict)  # platform, domain, is_syncing...
    customers: PackedRecords = field(default_factory=PackedRecords)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: OrderTable = field(default_factory=OrderTable)


def default_merge_fields() -> list[MergeField]:
    return [
        MergeField(1, "FNAME", "First Name", "text", display_order=2),
        MergeField(2, "LNAME", "Last Name", "text", display_order=3),
        MergeField(3, "ADDRESS", "Address", "address", display_order=4,
                   options={"default_country": 164}),
        MergeField(4, "PHONE", "Phone Number", "phone", display_order=5,
                   options={"phone_format": "none"}),
    ]


class AccountState:
    """Everything one Mailchimp account holds."""

    def __init__(self, clock: Clock) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.lists: dict[str, AudienceList] = {}
        self.stores: dict[str, Store] = {}
        self._ids = itertools.count(1001)  # segment ids: unique account-wide
        # Called as (audience, event, member fields, source, reason) on member events; the
        # webhook module plugs in here.
        self.on_member_event: Callable[[AudienceList, str, dict[str, Any], str, str], None] | (
            None) = None

    def next_id(self) -> int:
        return next(self._ids)

    def add_list(self, list_id: str, name: str) -> AudienceList:
        audience = AudienceList(list_id, name, self.clock.iso())
        for merge_field in default_merge_fields():
            audience.merge_fields[merge_field.merge_id] = merge_field
        self.lists[list_id] = audience
        return audience
