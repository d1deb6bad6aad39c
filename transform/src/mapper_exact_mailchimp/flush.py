"""Recompute the outputs of everything dirty, from the whole lookup store.

Computing from the store (not from the records as they arrive) is what makes the result
independent of arrival order and of how the input was split over runs: dedup by email, an
account's tags for a new contact, a payment for an old invoice all read the current rows.
"""

from __future__ import annotations

import logging
import marshal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from singer_sdk.singerlib import RecordMessage

from .account_tags import GatheredAccountTags
from .dates import parse_iso, utc_now_iso
from .emails import check_email
from .ledger import OutputLedger, canonical_json, content_hash, output_hash
from .lookup_store import Candidate, LookupStore
from .members import account_candidates, member_record, winner
from .orders import (
    DRAFT_STATUS,
    customer_email,
    customer_id,
    customer_record,
    invoice_outputs,
    order_id,
    product_id,
    split_exact_id,
)
from .rejections import Rejection, RejectionLog
from .settings import MappingSettings
from .tags import desired_member_tags, member_tag_records, tag_record
from .writer import RenderedRecord, encode_json, record_json, render_record

logger = logging.getLogger(__name__)

# Output order within a flush: what a later record refers to goes first.
STREAM_ORDER = ("tags", "members", "member_tags", "customers", "products", "orders", "deletions")
# Fields left out of the change hash: a cost-center rename travels as one `tags` record, and a
# member's newer timestamp alone does not re-send all its tags.
UNHASHED = {"member_tags": ("tag_name", "source_updated_at")}
# The input streams each output group is computed from. Mid-run, a group waits until the tap
# has moved past all of them: an address can gain a holder in any division or after a
# mid-stream STATE, and an invoice's parts come in several streams, so computing earlier
# would send the same member or order twice in one run (or a wrong interim value, e.g. every
# customer "inactive" before the invoices are read).
ACCOUNT_INPUTS = ("accounts", "contacts")
MEMBER_INPUTS = (*ACCOUNT_INPUTS, "deletions", "sales_invoices", "sales_invoice_lines",
                 "cost_centers")
ORDER_INPUTS = (*ACCOUNT_INPUTS, "deletions", "sales_invoices", "sales_invoice_lines",
                "receivables")
# Dirty marks of emails have no division: one address is one member across divisions.
ANY_DIVISION = 0
# `deletions.entity` → the output stream of what it deletes.
ENTITY_STREAMS = {"member": "members", "order": "orders", "product": "products"}
STREAM_ENTITIES = {stream: entity for entity, stream in ENTITY_STREAMS.items()}


# Streams whose outputs of a flush stay in memory until they are written: few (one per cost
# center or item), and looked up again within the flush (a product's first price). The others
# are spooled to a temporary file as they are computed and read back in STREAM_ORDER, so a
# first sync of 100,000 accounts does not hold its 600,000 outputs (issue 9: memory flat).
HELD_STREAMS = ("tags", "products")
# Accounts whose cost-center tags a flush keeps (a few small dicts each) for their next address.
ACCOUNT_TAGS_HELD = 20_000


@dataclass
class Output:
    """One output. Read back from a spool it carries its rendered RECORD `line` instead of
    the record (kept only for deletions, whose ledger bookkeeping reads it, and for a record
    that is not plain JSON), and `opt_out`, the one field of a member the ledger notes."""

    stream: str
    key: str
    record: dict[str, Any] | None
    owner: str | None = None
    line: str | None = None
    opt_out: bool = False
    # Computed once, on first use. Plain attributes, not `functools.cached_property`: on
    # Python < 3.12 its every first access takes a lock (issue 9: two per output).
    _payload: str | None = field(default=None, repr=False, compare=False)
    _digest: str | None = field(default=None, repr=False, compare=False)
    _rendered: bool = field(default=False, repr=False, compare=False)

    def message(self) -> RecordMessage | RenderedRecord:
        line = self.rendered()
        if line is not None:
            return RenderedRecord(self.stream, line)
        assert self.record is not None
        return RecordMessage(stream=self.stream, record=self.record)

    def opts_out(self) -> bool:
        return bool(self.record.get("opt_out")) if self.record is not None else self.opt_out

    def rendered(self) -> str | None:
        """The RECORD line; None when the record is not plain JSON (the SDK writes it)."""
        if not self._rendered:
            if self.line is None and self.record is not None:
                self.line = render_record(self.stream, self.record)
            self._rendered = True
        return self.line

    @property
    def payload(self) -> str:
        """What the ledger keeps of the output (see `stored_payload`)."""
        found = self._payload
        if found is None:
            found = self._payload = stored_payload(self.stream, self.record, self.rendered())
        return found

    def _hashed(self) -> dict[str, Any]:
        assert self.record is not None
        skip = UNHASHED.get(self.stream, ())
        return {k: v for k, v in self.record.items() if k not in skip} if skip else self.record

    @property
    def digest(self) -> str:
        found = self._digest
        if found is None:
            # The new form for plain JSON values only (see ledger.output_hash).
            found = self._digest = output_hash(self._hashed()) if self.rendered() is not None \
                else content_hash(self._hashed())
        return found

    def old_digest(self) -> str:
        """The hash in the form stored before issue 9's seventh pass (upgraded once)."""
        return content_hash(self._hashed())


# Payloads the flush reads back from the ledger: a member's source_key (`_member_gone`), a
# deletion (re-sent whole), a product's price, a member tag's key, name and state. Orders,
# customers and tags are never read back: nothing of them is kept (issue 9: an order's payload
# was a third of the ledger's bytes). Older stores' payloads read the same.
UNREAD_PAYLOADS = frozenset({"orders", "customers", "tags"})
WHOLE_PAYLOADS = frozenset(STREAM_ORDER) - UNREAD_PAYLOADS - {"members"}


def stored_payload(stream: str, record: dict[str, Any] | None, line: str | None) -> str:
    if stream in UNREAD_PAYLOADS:
        return ""
    if stream == "members" and record is not None:
        return f'{{"source_key":{encode_json(record.get("source_key"))}}}'
    if line is not None:
        return record_json(stream, line)  # the record's own JSON, as written: no new encode
    return canonical_json(record)


class Spool:
    """Changed outputs of one stream in one flush, on disk in the order they were computed.
    Each key comes once per flush (one member per dirty address, one order per dirty invoice,
    one customer per account: see Flusher._customer), so nothing is looked up here."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by read())

    def add(self, output: Output) -> None:
        # The RECORD line is rendered here, once, and goes along with the hash and the
        # payload the ledger keeps (marshal of a few strings: cheaper than of the record).
        # Length prefixed: marshal.load on a file reads it in tiny pieces.
        record = output.record
        assert record is not None
        line = output.rendered()
        kept = record if line is None or output.stream == "deletions" else None
        # A payload that is the line's own record JSON is cut from the line again when read.
        payload = None if line is not None and output.stream in WHOLE_PAYLOADS \
            else output.payload
        blob = marshal.dumps((output.stream, output.key, kept, output.owner, payload,
                              output.digest, line, bool(record.get("opt_out"))))
        self._file.write(len(blob).to_bytes(4, "little") + blob)

    def read(self) -> Iterator[Output]:
        with self._file:
            self._file.seek(0)
            while header := self._file.read(4):
                blob = self._file.read(int.from_bytes(header, "little"))
                found = marshal.loads(blob)  # noqa: S302 (our own file, this flush)
                stream, key, record, owner, payload, digest, line, opt_out = found
                yield Output(stream, key, record, owner, line, opt_out, payload, digest, True)


@dataclass
class FlushResult:
    outputs: Iterator[Output] = field(default_factory=lambda: iter(()))
    rejected: int = 0
    deferred: bool = False  # something dirty waits for input still to come in this run


def deletion_key(entity: str, key: str) -> str:
    return f"{entity}\n{key}"


class Flusher:
    def __init__(
        self, store: LookupStore, ledger: OutputLedger, rejection_log: RejectionLog,
        settings: MappingSettings,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.rejection_log = rejection_log
        self.settings = settings
        # Every invoice row is dirty until the first invoice step of a run that began on an
        # empty store (a first sync): that step can gather the accounts' tags (account_tags.py).
        self._invoices_all_dirty = store.was_empty
        self._gathering: GatheredAccountTags | None = None  # while the invoice step runs

    def flush(
        self, *, final: bool, finished: frozenset[str] = frozenset(),
        extra_rejections: list[Rejection] | None = None,
    ) -> FlushResult:
        """Changed outputs of everything dirty whose input streams have all been read (see
        ACCOUNT_INPUTS and co.); the rest stays dirty. `finished` names the input streams the
        tap has moved past in this run; at the end of input (`final`) everything is computed.
        Dirty marks live in the store: crash-safe."""
        self._final, self._finished = final, finished
        self._buckets: dict[str, dict[str, Output]] = {s: {} for s in HELD_STREAMS}
        self._spools = {s: Spool() for s in STREAM_ORDER if s not in HELD_STREAMS}
        self._rejections: list[Rejection] = list(extra_rejections or [])
        # The ledger does not change while a flush computes: streams with a trusted hash.
        self._trusted = {s for s in STREAM_ORDER if self.ledger.has_confirmed(s)}
        # Rows read again and again within one flush (the store does not change during it).
        self._cost_centers: dict[tuple[int, str], dict[str, Any] | None] = {}
        self._customer_emails: dict[tuple[int, str], str | None] = {}
        self._account_tags: dict[tuple[int, str], dict[str, str]] = {}
        self._gathered: GatheredAccountTags | None = None  # by this flush's invoice step
        result = FlushResult()
        if final and self.settings.inactive_after_days is not None:
            self._mark_customers_for_inactivity()
        # Accounts feed only members and orders: computed when one of those is, so the
        # invoices and lines read after the contacts do not recompute them a second time.
        # Invoices before members: on a first sync the members' tags come from the invoices
        # the orders were computed from (account_tags.py). Each step's outputs go to their
        # own stream, written in STREAM_ORDER whatever the order of the steps.
        members_wait, orders_wait = self._waits_for(MEMBER_INPUTS), self._waits_for(ORDER_INPUTS)
        steps = ((members_wait and orders_wait, "account", self._flush_accounts),
                 (orders_wait, "invoice", self._flush_invoices),
                 (members_wait, "email", self._flush_members),
                 (False, "cost_center", self._flush_cost_centers),
                 (orders_wait, "item", self._flush_items))
        for waits, kind, step in steps:
            if waits:
                result.deferred |= self.store.has_dirty(kind)
            else:
                step()
        result.rejected = self.rejection_log.report(self._rejections)
        result.outputs = self._changed_outputs()
        return result

    def _changed_outputs(self) -> Iterator[Output]:
        """What the target must get, stream by stream; read from the spools as it is written."""
        held = {stream: [o for o in self._buckets[stream].values() if not self._unchanged(o)]
                for stream in HELD_STREAMS}
        spools, self._spools = self._spools, {}
        for stream in STREAM_ORDER:
            if stream in held:
                yield from held[stream]
            else:
                yield from spools[stream].read()

    def _unchanged(self, output: Output) -> bool:
        if output.stream not in self._trusted:
            return False  # no trusted hash of this stream at all (a first sync): no lookup
        return self.ledger.is_unchanged(output.stream, output.key, output.digest,
                                        output.old_digest)

    def _may_still_come(self, stream: str) -> bool:
        return not self._final and stream not in self._finished

    def _waits_for(self, inputs: tuple[str, ...]) -> bool:
        return any(self._may_still_come(stream) for stream in inputs)

    def _add(self, stream: str, key: str, record: dict[str, Any], owner: str | None = None) -> None:
        if stream in self._buckets:
            self._buckets[stream][key] = Output(stream, key, record, owner)
            return
        output = Output(stream, key, record, owner)
        if not self._unchanged(output):
            self._spools[stream].add(output)

    def _reject(self, rejections: list[Rejection]) -> None:
        self._rejections.extend(rejections)

    def _each_dirty(self, kind: str) -> Iterator[tuple[int, str]]:
        """Dirty keys of `kind`, each chunk cleaned once it is recomputed (in the flush's
        transaction: a kill rolls the marks back with everything else)."""
        for chunk in self.store.dirty_chunks(kind):
            self._prefetch(kind, chunk)
            yield from chunk
            self.store.forget_prefetched()
            self.store.clean(kind, chunk)

    def _prefetch(self, kind: str, chunk: list[tuple[int, str]]) -> None:
        """Read what the recompute of a chunk of dirty keys reads, a few queries per 200 keys
        (issue 9: per-key reads were most of a flush's statements, a round trip each on
        PostgreSQL: 10k capture 14.3 → 10.1 CPU s). The recompute itself reads as before;
        the store answers from memory. Not on SQLite, where a statement is a function call
        and the prefetch's own bookkeeping cost more (6.1 → 6.6 s) than it saved."""
        if self.store.db.is_sqlite:
            return
        prefetch = self.store.prefetch
        if kind == "account":
            prefetch("accounts", "id", chunk)
            prefetch("contacts", "parent", chunk)
            if not self._invoices_all_dirty:  # else no invoice is read (_account_candidates)
                prefetch("sales_invoices", "parent", chunk)
            # (Not its candidates: this step replaces them, and a moved contact's candidate
            # changes another account's.)
        elif kind == "email":
            self.store.prefetch_candidates("email", chunk)
            candidates = [c for _, email in chunk for c in self.store.candidates_for_email(email)]
            accounts = {(c.division, c.account_id) for c in candidates}
            prefetch("accounts", "id", accounts)
            prefetch("contacts", "id", {(c.division, c.contact_id) for c in candidates})
            if self._gathered is None:  # else the tags need no invoice
                self._prefetch_invoices_of(accounts)
        elif kind == "invoice":
            prefetch("sales_invoices", "id", chunk)
            prefetch("sales_invoice_lines", "parent", chunk)
            links = {division: self.store.locations("sales_invoices", division, ids)
                     for division, ids in _by_division(chunk).items()}
            accounts = {(d, parent) for d, found in links.items()
                        for parent, _ in found.values() if parent}
            prefetch("receivables", "number", {(d, number) for d, found in links.items()
                                               for _, number in found.values()})
            prefetch("accounts", "id", accounts)
            self.store.prefetch_candidates("account", accounts)
            prefetch("contacts", "id", {
                (c.division, c.contact_id) for division, account_id in accounts
                for c in self.store.candidates_of_account(division, account_id)})

    def _prefetch_invoices_of(self, accounts: set[tuple[int, str]]) -> None:
        """The invoices of `accounts` and their lines (the members' cost-center tags)."""
        self.store.prefetch("sales_invoices", "parent", accounts)
        self.store.prefetch("sales_invoice_lines", "parent", {
            (division, invoice_id) for division, account_id in accounts
            for invoice_id in self.store.prefetched_ids("sales_invoices", "parent", division,
                                                        account_id)})

    # --- members ---------------------------------------------------------------------------

    def _flush_accounts(self) -> None:
        """Recompute the member candidates of dirty accounts; dirty what depends on them.
        The candidates of a chunk of accounts are replaced at once (issue 9), before the
        chunk is cleaned; nothing reads candidates while a chunk is computed."""
        for chunk in self.store.dirty_chunks("account"):
            self._prefetch("account", chunk)
            new: list[Candidate] = []
            for division, account_id in chunk:
                new += self._account_candidates(division, account_id)
            for email in self.store.replace_candidates_of_accounts(chunk, new):
                self.store.mark("email", ANY_DIVISION, email)
            self.store.forget_prefetched()
            self.store.clean("account", chunk)

    def _account_candidates(self, division: int, account_id: str) -> list[Candidate]:
        """The account's member candidates now (none once it is deleted); reports what it
        rejects and dirties its invoices."""
        buried = self.store.is_buried("accounts", division, account_id)
        candidates: list[Candidate] = []
        if not buried:
            account = self.store.row("accounts", division, account_id)
            contacts = self.store.children("contacts", division, account_id)
            candidates, rejections, fine = account_candidates(
                division, account_id, account, contacts)
            self._reject(rejections)
            for contact_id in fine:
                self.rejection_log.resolved("contacts", division, contact_id)
            if candidates:
                self.rejection_log.resolved("accounts", division, account_id)
        # Orders need the account's customer email, which may just have appeared (on a first
        # sync every invoice is dirty already: no need to look them up).
        if not self._invoices_all_dirty:
            for invoice_id in self.store.child_ids("sales_invoices", division, account_id):
                self.store.mark("invoice", division, invoice_id)
        return candidates

    def _flush_members(self) -> None:
        for _, email in self._each_dirty("email"):
            self._member_outputs(email)

    def _member_outputs(self, email: str) -> None:
        candidates = self.store.candidates_for_email(email)
        if not candidates:
            self._member_gone(email)
            return
        chosen = winner(candidates)
        # Consent is per person: if any Exact record with this address says "do not mail"
        # (excluded contact, blocked account), the address is not subscribed.
        excluded = any(c.excluded for c in candidates)
        inactive = self._inactive(candidates)
        account = self.store.row("accounts", chosen.division, chosen.account_id)
        contact = self.store.row("contacts", chosen.division, chosen.contact_id)
        self._add("members", email, member_record(
            chosen, account, contact, excluded=excluded, inactive=inactive,
            opted_out_before=self.ledger.opted_out(email), settings=self.settings))
        desired = desired_member_tags(
            self.store, candidates, excluded=excluded, inactive=inactive, settings=self.settings,
            known_cost_centers=self._cost_centers,
            known_accounts=self._gathered or self._account_tags)
        if len(self._account_tags) > ACCOUNT_TAGS_HELD:
            self._account_tags.clear()  # memory stays bounded on a first sync of 100k accounts
        # Tags that may be on the member: sent active, or a removal not confirmed yet.
        previously_active = {
            p["tag_key"]: p["tag_name"]
            for p, confirmed in self.ledger.payloads_of_owner("member_tags", email)
            if p.get("active") or not confirmed
        }
        for record in member_tag_records(email, desired, previously_active, chosen.updated_at):
            self._add("member_tags", f"{email}\n{record['tag_key']}", record, owner=email)

    def _member_gone(self, email: str) -> None:
        """No live Exact record holds the address any more: delete the member we created."""
        key = deletion_key("member", email)
        previous = self.ledger.payload("members", email)
        if previous is None:
            # Never sent, or already deleted: then only a deletion the target never confirmed
            # goes again (a confirmed one is dropped as unchanged).
            sent = self.ledger.payload("deletions", key)
            if sent:
                self._add("deletions", key, sent)
            return
        _, division, kind, row_id = str(previous.get("source_key")).split(":", 3)
        if kind == "account" and self._account_inbox(int(division), row_id) == email:
            # The account merely gained contacts; its inbox did not leave: keep the member.
            return
        deleted_at = self._deleted_at(kind, int(division), row_id)
        self._add("deletions", key,
                  {"entity": "member", "key": email, "deleted_at": deleted_at or utc_now_iso()})

    def _account_inbox(self, division: int, account_id: str) -> str | None:
        account = self.store.row("accounts", division, account_id)
        return check_email(account.get("Email")).email if account else None

    def _deleted_at(self, kind: str, division: int, row_id: str) -> str | None:
        """When Exact deleted the record (or its account); None when it just changed address."""
        if kind == "account":
            return self.store.deleted_at("accounts", division, row_id)
        contact = self.store.row("contacts", division, row_id) or {}
        return self.store.deleted_at("contacts", division, row_id) or (
            self.store.deleted_at("accounts", division, str(contact.get("Account"))))

    def _was_sent(self, entity: str, key: str) -> bool:
        """Sent live, or already deleted: recomputing the deletion re-sends it only when the
        target never confirmed it (the ledger forgets unconfirmed hashes)."""
        return (self.ledger.was_emitted(ENTITY_STREAMS[entity], key)
                or self.ledger.was_emitted("deletions", deletion_key(entity, key)))

    def requeue_unconfirmed(self) -> None:
        """Dirty what the target never confirmed, so it is recomputed and sent again. The tap
        resends its rows, but a resent Exact deletion finds its row gone and dirties nothing,
        and which addresses an account's change touched is not kept: so the outputs' own keys
        are dirtied (invoices and cost centers are dirtied by their resent rows)."""
        # From the ledger's keys alone (a member's key is its email, a member tag's owner its
        # email, a deletion's key `member\n<email>`, a customer's key its id): the payloads
        # of customers are not kept, and none is decoded.
        member_deletion = deletion_key("member", "")
        for stream, key, owner in self.ledger.unconfirmed():
            if stream == "members":
                self.store.mark("email", ANY_DIVISION, key)
            elif stream == "member_tags" and owner is not None:
                self.store.mark("email", ANY_DIVISION, owner)
            elif stream == "deletions" and key.startswith(member_deletion):
                self.store.mark("email", ANY_DIVISION, key[len(member_deletion):])
            elif stream == "customers":
                self.store.mark("account", *split_exact_id(key))

    def _inactive(self, candidates: list[Candidate]) -> bool:
        """Inactive when every account behind the address is a customer without recent invoice."""
        days = self.settings.inactive_after_days
        if days is None:
            return False
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        for division, account_id in {(c.division, c.account_id) for c in candidates}:
            account = self.store.row("accounts", division, account_id) or {}
            if account.get("Status") != "C":
                return False
            dates = [parse_iso(i.get("InvoiceDate")) for i in self.store.children(
                "sales_invoices", division, account_id) if i.get("Status") != DRAFT_STATUS]
            if any(d is not None and d >= cutoff for d in dates):
                return False
        return True

    def _mark_customers_for_inactivity(self) -> None:
        # Time alone turns a customer inactive, without any Exact change: re-check them all
        # (unchanged results are not re-sent).
        for division, account_id in list(self.store.all_ids("accounts")):
            account = self.store.row("accounts", division, account_id) or {}
            if account.get("Status") == "C":
                self.store.mark("account", division, account_id)

    # --- tags ------------------------------------------------------------------------------

    def _flush_cost_centers(self) -> None:
        for division, code in self._each_dirty("cost_center"):
            rows = self.store.by_number("cost_centers", division, code)
            if rows:
                newest = max(rows, key=lambda r: str(r.get("Modified") or ""))
                record = tag_record(newest, division, self.settings)
                self._add("tags", record["tag_key"], record)

    # --- e-commerce ------------------------------------------------------------------------

    def _flush_invoices(self) -> None:
        gathered = GatheredAccountTags(self.store, self.settings, self._cost_centers) \
            if self._invoices_all_dirty else None
        self._invoices_all_dirty = False
        self._gathering = gathered
        for division, invoice_id in self._each_dirty("invoice"):
            self._flush_invoice(division, invoice_id)
        self._gathering = None
        if gathered is not None and gathered.usable:
            self._gathered = gathered

    def _flush_invoice(self, division: int, invoice_id: str) -> None:
        """Customer, products and order of one invoice (or the deletion of its order)."""
        invoice = self.store.row("sales_invoices", division, invoice_id)
        oid = order_id(division, invoice_id)
        if invoice is None:
            if self.store.is_buried("sales_invoices", division, invoice_id):
                if self._was_sent("order", oid):
                    self._add("deletions", deletion_key("order", oid), {
                        "entity": "order", "key": oid,
                        "deleted_at": self.store.deleted_at("sales_invoices", division, invoice_id),
                    })
                return
            for line_id in self.store.child_ids("sales_invoice_lines", division, invoice_id):
                self._reject([Rejection("sales_invoice_lines", division, line_id,
                                        f"invoice {invoice_id} not received (no header row)")])
            return
        if invoice.get("Status") == DRAFT_STATUS:
            return  # drafts are not sales yet (README, "E-commerce")
        lines = self.store.children("sales_invoice_lines", division, invoice_id)
        if self._gathering is not None:
            self._gathering.add_invoice(division, invoice_id, invoice, lines)
        account_id = str(invoice.get("InvoiceTo") or "")
        receivables = self.store.by_number(
            "receivables", division, str(invoice.get("InvoiceNumber")))
        if self._customer(division, account_id) is None:
            self._reject([Rejection(
                "sales_invoices", division, invoice_id,
                f"account {account_id or '(none)'} has no usable email: no Mailchimp customer "
                "possible", {"InvoiceNumber": invoice.get("InvoiceNumber")})])
            return
        outputs = invoice_outputs(division, invoice, lines, receivables)
        self._reject(outputs.rejections)
        if outputs.order:
            for product in outputs.products:
                self._add_product(product)
            self._add("orders", oid, outputs.order)
            self.rejection_log.resolved("sales_invoices", division, invoice_id)

    def _customer(self, division: int, account_id: str) -> str | None:
        """The account's customer email (None: no customer possible); its `customers` output
        is added once per flush, however many of the account's invoices are dirty."""
        key = (division, account_id)
        if key in self._customer_emails:
            return self._customer_emails[key]
        account = self.store.row("accounts", division, account_id)
        candidates = self.store.candidates_of_account(division, account_id)
        email = self._customer_emails[key] = customer_email(account, candidates)
        if email is not None:
            source = next((c for c in candidates if c.email == email and c.contact_id), None)
            contact = self.store.row("contacts", division, source.contact_id) if source else None
            self._add("customers", customer_id(division, account_id),
                      customer_record(division, account_id, account, email, contact))
        return email

    def _add_product(self, product: dict[str, Any]) -> None:
        """A product's price is a catalog price, not one invoice's: the first price sent stays
        and later lines (a cheap one-off sale) never rewrite it. The mapper sees no Items, so
        the item's list price is not known; the first sale's UnitPrice stands in for it."""
        pending = self._buckets["products"].get(product["id"])  # this flush, an earlier invoice
        earlier = pending.record if pending else self.ledger.payload("products", product["id"])
        if earlier and earlier.get("price") is not None:
            product = {**product, "price": earlier["price"]}
        self._add("products", product["id"], product)

    def _flush_items(self) -> None:
        for division, item_id in self._each_dirty("item"):
            pid = product_id(division, {"Item": item_id})
            if self._was_sent("product", pid):
                self._add("deletions", deletion_key("product", pid), {
                    "entity": "product", "key": pid,
                    "deleted_at": self.store.deleted_at("items", division, item_id),
                })


def _by_division(keys: list[tuple[int, str]]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for division, key in keys:
        found.setdefault(division, []).append(key)
    return found


def after_emit(ledger: OutputLedger, output: Output) -> None:
    """Ledger bookkeeping once an output is written: a deletion ends what it deletes, and a
    live record ends an earlier deletion (so a later deletion is sent again)."""
    ledger.record(output.stream, output.key, output.digest, output.payload, output.owner)
    if output.stream == "deletions":
        assert output.record is not None  # kept for deletions (see Spool.add)
        entity, key = output.record["entity"], output.record["key"]
        ledger.forget(ENTITY_STREAMS[entity], key)
        if entity == "member":
            ledger.forget_owner("member_tags", key)
    elif output.stream in STREAM_ENTITIES:
        entity = STREAM_ENTITIES[output.stream]
        ledger.forget("deletions", deletion_key(entity, output.key))
        if output.stream == "members" and output.opts_out():
            ledger.note_opt_out(output.key)
