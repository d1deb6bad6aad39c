"""What one run knows of the audience's members: read once, then only what changed since.

Why: each members drain must know which members Mailchimp changed after their source
timestamp, and which are archived. Asking Mailchimp again for "everything changed since the
oldest source timestamp" in every drain re-reads every member the run has already written (a
cost that grew with the audience, quadratically over a first sync). Here the first read covers
that timestamp and every later read only asks for what changed since the newest change the
previous read saw, so a run reads each change about once. A run starts from what earlier runs
read (`audience_memory.py`), so it reads only what changed since them.

Writes that move members' `last_changed` without answering it (customers, tagging, tag
renames) are confirmed from these reads as well (`SideEffects`), instead of a read-back after
every drain.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from typing import Any

from target_mailchimp.audience_memory import AudienceMemory
from target_mailchimp.client import MailchimpClient
from target_mailchimp.values import iso, mailchimp_email, to_datetime

# Our clock vs Mailchimp's, when matching a change to a write of ours by its time.
CLOCK_MARGIN = datetime.timedelta(minutes=2)
# Mailchimp's times have whole seconds; whether `since_last_changed` includes the second it
# names is unconfirmed (the docs say "after"), so the next read starts a second earlier.
SECOND = datetime.timedelta(seconds=1)
MEMBER_FIELDS = "members.email_address,members.status,members.last_changed,total_items"
ARCHIVED_FIELDS = "members.email_address,members.last_changed,total_items"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class Window:
    """Writes of ours that may have changed these members (None: any member) in this span."""

    emails: frozenset[str] | None
    started: datetime.datetime
    ended: datetime.datetime

    def covers(self, email: str, changed: datetime.datetime) -> bool:
        return ((self.emails is None or email in self.emails)
                and self.started - CLOCK_MARGIN <= changed <= self.ended + CLOCK_MARGIN)


class AudienceView:
    """Members (status, last_changed) as Mailchimp last showed them to this run."""

    def __init__(self, client: MailchimpClient, list_id: str,
                 memory: AudienceMemory | None = None) -> None:
        self.client = client
        self.list_id = list_id
        # The audience as earlier runs read it (audience_memory.py): None, read afresh.
        self.memory = memory
        self._recalled = memory is None
        # email -> (status, last_changed): tuples, as a 100,000-member audience is held whole.
        self.members: dict[str, tuple[str | None, str | None]] = {}
        self._covered_from: datetime.datetime | None = None
        self._cursor: datetime.datetime | None = None  # read next from here
        self._read_started: datetime.datetime | None = None  # our clock, at the last read
        self._archived: set[str] | None = None
        self._archived_cursor: datetime.datetime | None = None
        self._lock = threading.RLock()
        # One (status, last_changed) pair object per distinct value: members changed in the
        # same second share it (issue 9: ~25 MB fewer at 100k members than a tuple and two
        # strings each).
        self._pairs: dict[tuple[str | None, str | None], tuple[str | None, str | None]] = {}

    def _shared(self, pair: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
        return self._pairs.setdefault(pair, pair)

    def changed_since(self, since: datetime.datetime
                      ) -> dict[str, tuple[str | None, str | None]]:
        """Every member known to this run, including all changed since `since` (read now).

        The answer may hold members changed earlier too: callers compare `last_changed`.
        """
        with self._lock:
            self._recall()
            if self._covered_from is None or since < self._covered_from:
                self._read_members(since, covers_from=since)
            else:
                self.refresh()
            return self.members

    def refresh(self) -> None:
        """Read what changed since the last read (nothing read yet: no call)."""
        with self._lock:
            if self._cursor is not None:
                self._read_members(self._cursor, covers_from=self._covered_from)

    def read_since(self, since: datetime.datetime, after: datetime.datetime) -> None:
        """Make sure every change since `since` that was made before `after` has been read
        (to confirm our writes of that span): no call if a read covering it started later."""
        with self._lock:
            self._recall()
            covered = self._covered_from is not None and self._covered_from <= since
            if covered and self._read_started is not None and self._read_started >= after:
                return
            if covered:
                self.refresh()
            else:
                self._read_members(since, covers_from=since)

    def _recall(self) -> None:
        """Once per run: start from what earlier runs read, so that only changes since their
        last read are read (not the whole audience, for a source time older than them)."""
        if self._recalled or self.memory is None:
            return
        self._recalled = True
        span = self.memory.span()
        if span is None:
            return
        self.members.update((email, self._shared(pair))
                            for email, pair in self.memory.members().items())
        self._covered_from, self._cursor = span
        # A read covering the span's end is still due: not `_read_started`.

    def forget(self, emails: set[str]) -> None:
        """Deleted or archived by us: no longer as last read (a deleted member is gone)."""
        with self._lock:
            for email in emails:
                self.members.pop(email, None)
            if self.memory is not None:
                self.memory.forget(emails)

    def _read_members(self, since: datetime.datetime,
                      covers_from: datetime.datetime | None) -> None:
        """Read every change since `since`; the span from `covers_from` to the new cursor is
        then covered (contiguous: `since` is never after the previous cursor)."""
        started = now()
        newest: datetime.datetime | None = None
        seen: dict[str, tuple[str | None, str | None]] = {}
        members = self.members
        times: dict[str, datetime.datetime | None] = {}  # members of one second share it
        for member in self.client.paginate(
            f"lists/{self.list_id}/members", "members",
            {"since_last_changed": iso(since), "fields": MEMBER_FIELDS},
        ):
            raw = member.get("email_address")
            status, stamp = member.get("status"), member.get("last_changed")
            known = members.get(raw) if type(raw) is str else None
            if known is not None and known[0] == status and known[1] == stamp:
                # Listed again as this run last saw it (each read re-reads the last second):
                # nothing to store or remember again (issue 9). The keys are our spelling, so
                # the address is already that.
                email = raw
            else:
                email = mailchimp_email(member)
                seen[email] = self._shared((status, stamp))
            if type(stamp) is str:
                try:
                    changed = times[stamp]
                except KeyError:
                    changed = times[stamp] = to_datetime(stamp)
            else:
                changed = to_datetime(stamp)
            if changed is not None and (newest is None or changed > newest):
                newest = changed
            if self._archived is not None:
                # Whether plain reads list archived members is unconfirmed: take either.
                if status == "archived":
                    self._archived.add(email)
                else:
                    self._archived.discard(email)
        # The next read starts at the newest change seen (Mailchimp's own clock, so no skew),
        # or a clock margin before this read, whichever is later: both are before any change
        # this read could not see (not `since`: a source timestamp may lie in the future).
        cursor = started - CLOCK_MARGIN
        if newest is not None and newest - SECOND > cursor:
            cursor = newest - SECOND
        self._cursor = cursor
        self._read_started = started
        self._covered_from = covers_from if covers_from is not None else since
        if self.memory is not None:
            self.memory.remember(seen, self._covered_from, cursor)
        # After the memory: what this run holds is never ahead of what it remembered.
        members.update(seen)

    def archived(self) -> set[str]:
        """Archived contacts (any write naming them would bring them back).

        The first call reads them all; later ones only those changed since. Whether archiving
        moves `last_changed` in the real API is unconfirmed: if it does not, a contact archived
        in Mailchimp during this run is first seen by the next run's full read; our own
        archiving resets this (`forget_archived`), so the next call reads them all again.
        """
        with self._lock:
            started = now()
            if self._archived is None or self._archived_cursor is None:
                self._archived = set()
                params: dict[str, Any] = {"status": "archived", "fields": ARCHIVED_FIELDS}
            else:
                params = {"status": "archived", "fields": ARCHIVED_FIELDS,
                          "since_last_changed": iso(self._archived_cursor)}
            for member in self.client.paginate(f"lists/{self.list_id}/members", "members",
                                               params):
                self._archived.add(mailchimp_email(member))
            self._archived_cursor = started - CLOCK_MARGIN
            return set(self._archived)

    def forget_archived(self) -> None:
        with self._lock:
            self._archived = None
            self._archived_cursor = None


class SideEffects:
    """Our writes that move members' `last_changed` without answering it, until confirmed.

    Each block of such writes leaves a write-ahead note per member in the audit DB (a run that
    dies leaves it, and the next run reads those members back first) and a time window here.
    A later read of the audience (the next members drain, or the end of the run) confirms
    them: a member whose `last_changed` falls in one of its windows changed by our hand, and
    that value is remembered as ours; a change after the window is someone else's.
    """

    def __init__(self) -> None:
        self.windows: list[Window] = []
        self._lock = threading.Lock()

    def add(self, window: Window) -> None:
        with self._lock:
            self.windows.append(window)

    def take(self) -> list[Window]:
        with self._lock:
            windows, self.windows = self.windows, []
            return windows
