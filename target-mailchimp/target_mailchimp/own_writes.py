"""Remembering member changes that are side effects of our other writes.

Tagging (segment updates, tag renames and deletions) and e-commerce customers change a
member's `last_changed` without answering with it. Unremembered, the next members drain would
take those changes for edits made in Mailchimp and skip every source update older than them
(e.g. a whole full refresh).

Confirmed before trusted: such a change counts as ours once a read of the audience shows it
inside the time window of our writes. That read is not one per drain (each re-read every
member changed in the last minutes: a cost that grew with the audience) but the run's next
incremental read of the audience (`audience.AudienceView`): the next members drain, or the end
of the run (`confirm_side_effects`, from `RunContext.close`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from target_mailchimp.audience import CLOCK_MARGIN, MEMBER_FIELDS, Window, now
from target_mailchimp.audit_db import chunks
from target_mailchimp.run_context import RunContext
from target_mailchimp.values import iso, mailchimp_email, to_datetime

SETTLE_CHUNK = 2000  # members per settle of `confirm_side_effects`


def read_back(context: RunContext, emails: set[str] | None, since: datetime.datetime) -> None:
    """Remember as ours the last_changed of these members (None: of every member) if it
    moved since `since`; clear their write-ahead notes either way."""
    list_id = context.list_id
    confirmed: dict[str, str | None] = {}
    members = context.client.paginate(
        f"lists/{list_id}/members", "members",
        {"since_last_changed": iso(since - CLOCK_MARGIN), "fields": MEMBER_FIELDS},
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
    """Around writes that may change these members: write-ahead note, then a time window
    that a later read of the audience confirms (`confirm_side_effects`).

    If the block raises (outage, kill), the note stays and the next run reads these members
    back before anything else (`settle_dead_runs`), as for an interrupted members write.
    """
    wanted = frozenset(emails)
    if not wanted:
        yield
        return
    settle_dead_runs(context)
    started = now()
    context.audit.mark_members_pending(context.list_id, wanted, iso(started) or "")
    yield
    context.side_effects.add(Window(wanted, started, now()))


def side_effect_on_everyone(context: RunContext, started: datetime.datetime) -> None:
    """A tag renamed or deleted since `started` changed every member who had it, and the
    answer does not say who: confirmed at once, as no write-ahead note covers them."""
    context.side_effects.add(Window(None, started, now()))
    confirm_side_effects(context)


def confirm_side_effects(context: RunContext) -> None:
    """Remember as ours each change the audience shows inside a window of our writes; clear
    the write-ahead notes of those windows either way. One incremental read (often none: the
    members drain has just read)."""
    windows = context.side_effects.take()
    if not windows:
        return
    view = context.audience
    view.read_since(min(w.started for w in windows) - CLOCK_MARGIN,
                    after=max(w.ended for w in windows))
    noted: set[str] = set().union(*(w.emails for w in windows if w.emails is not None))
    everyone = any(w.emails is None for w in windows)
    candidates = view.members.keys() if everyone else noted
    confirmed: dict[str, str | None] = {}
    for email in candidates:
        status_and_stamp = view.members.get(email)
        changed = to_datetime(status_and_stamp[1]) if status_and_stamp else None
        if changed is not None and any(w.covers(email, changed) for w in windows):
            confirmed[email] = status_and_stamp[1] if status_and_stamp else None
    # A chunk of members at a time (issue 9: a first sync's customers note the whole audience,
    # and its 100k rows at once were the target's peak). Each chunk is settled for good; a
    # kill in between leaves the rest noted, read back first by the next run.
    for chunk in chunks(sorted(noted | confirmed.keys()), SETTLE_CHUNK):
        context.audit.settle_members(context.list_id, chunk,
                                     {e: confirmed[e] for e in chunk if e in confirmed})
