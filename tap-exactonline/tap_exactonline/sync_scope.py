"""`sync_scope`: what a run reads — every partition, or only what pending webhooks announced.

A webhook-triggered run (`sync_scope: pending_webhooks`) reads just the (stream, division)
partitions the inbox names, from their bookmarks: an incremental run of the affected streams
and division, a few calls instead of one per feed and division. Partitions out of scope are not
read and their state is left exactly as it came in (the SDK carries the whole input state into
every STATE message), so the next `all` run (the schedule, the safety net) goes on from there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ALL = "all"
PENDING_WEBHOOKS = "pending_webhooks"
SCOPES = (ALL, PENDING_WEBHOOKS)

# Which streams a delivery's topic makes worth reading. A payment fires SalesInvoices/Update,
# so receivables go with the invoice feed (headers and lines share one read).
TOPIC_SCOPE: dict[str, tuple[str, ...]] = {
    "Accounts": ("accounts",),
    "Contacts": ("contacts",),
    "SalesInvoices": ("sales_invoices", "sales_invoice_lines", "receivables"),
}
DELETIONS = "deletions"  # a Delete of any topic shows up in sync/Deleted


def entry_partitions(entry: dict[str, Any]) -> set[tuple[str, str]]:
    """The (stream, division) partitions that read what one inbox entry announced."""
    division = str(entry.get("Division"))  # Exact may send "101" or 101
    streams = set(TOPIC_SCOPE.get(str(entry.get("Topic") or ""), ()))
    if str(entry.get("Action") or "").lower() == "delete":
        streams.add(DELETIONS)
    return {(stream, division) for stream in streams}


@dataclass(frozen=True)
class SyncScope:
    """None: every partition (scope `all`); else the (stream, division) pairs to read."""

    partitions: frozenset[tuple[str, str]] | None = None

    @classmethod
    def from_entries(cls, entries: Iterable[dict[str, Any]]) -> SyncScope:
        wanted: set[tuple[str, str]] = set()
        for entry in entries:
            wanted |= entry_partitions(entry)
        return cls(frozenset(wanted))

    @property
    def everything(self) -> bool:
        return self.partitions is None

    @property
    def empty(self) -> bool:
        return self.partitions is not None and not self.partitions

    def covers(self, stream: str, division: Any) -> bool:
        return self.partitions is None or (stream, str(division)) in self.partitions

    def streams(self) -> list[str]:
        return sorted({stream for stream, _ in self.partitions or ()})

    def describe(self) -> str:
        if self.partitions is None:
            return "every stream and division"
        return ", ".join(f"{s} (division {d})" for s, d in sorted(self.partitions)) or "nothing"
