"""Remembering member changes that are side effects of our other writes.

Tagging (segment updates, tag renames and deletions) and e-commerce customers change a
member's `last_changed` without answering with it. Unremembered, the next members drain would
take those changes for edits made in Mailchimp and skip every source update older than them
(e.g. a whole full refresh).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from target_mailchimp.run_context import RunContext
from target_mailchimp.values import iso, mailchimp_email, to_datetime

# Our clock vs Mailchimp's, when matching a change to a write of ours by its time.
CLOCK_MARGIN = datetime.timedelta(minutes=2)
CONFLICT_FIELDS = "members.email_address,members.status,members.last_changed,total_items"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def read_back(context: RunContext, emails: set[str] | None, since: datetime.datetime) -> None:
    """Remember as ours the last_changed of these members (None: of every member) if it
    moved since `since`; clear their write-ahead notes either way."""
    list_id = context.list_id
    confirmed: dict[str, str | None] = {}
    members = context.client.paginate(
        f"lists/{list_id}/members", "members",
        {"since_last_changed": iso(since - CLOCK_MARGIN), "fields": CONFLICT_FIELDS},
    )
    for member in members:
        email = mailchimp_email(member)
        if emails is None or email in emails:
            confirmed[email] = member.get("last_changed")
    context.audit.settle_members(list_id, emails or (), confirmed)


def settle_dead_runs(context: RunContext) -> None:
    """Once per run, before its own notes: settle the notes of runs that died.

    Their unconfirmed writes happened before now, so reading them back closes the window in
    which a change in Mailchimp is taken for ours (left open, it would swallow real edits
    made in Mailchimp long after the dead run).
    """
    if context.dead_runs_settled:
        return
    context.dead_runs_settled = True
    pending = context.audit.pending_members(context.list_id)
    if not pending:
        return
    stamps = [stamp for stamp in map(to_datetime, pending.values()) if stamp is not None]
    read_back(context, set(pending), min(stamps, default=now()))


@contextmanager
def member_side_effects(context: RunContext, emails: Iterable[str]) -> Iterator[None]:
    """Around writes that may change these members: write-ahead note, then read back.

    If the block raises (outage, kill), the note stays and the next run reads these members
    back before anything else (`settle_dead_runs`), as for an interrupted members write.
    """
    wanted = set(emails)
    if not wanted:
        yield
        return
    settle_dead_runs(context)
    started = now()
    context.audit.mark_members_pending(context.list_id, wanted, iso(started) or "")
    yield
    read_back(context, wanted, started)
