"""The three streams of the way back (contract: docs/contracts.md, "Streams from tap-mailchimp").

Each is partitioned by `list_id`, so every audience keeps its own bookmark.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk import typing as th

from tap_mailchimp.inbox import InboxEvent, inbox_location, open_inbox, read_events, utc_iso

if TYPE_CHECKING:
    from tap_mailchimp.tap import TapMailchimp

# Mailchimp webhook type → member status it leaves behind.
EXCLUDING_EVENTS = {"unsubscribe": "unsubscribed", "cleaned": "cleaned"}
UNREAD_EVENTS = ("subscribe", "profile", "campaign")  # stored by the service, read by none
MEMBER_FIELDS = "members.email_address,members.status,members.last_changed,total_items"
SEGMENT_FIELDS = ("segments.id,segments.name,segments.member_count,segments.type,"
                  "segments.created_at,segments.updated_at,total_items")


class ListStream(Stream):
    """A stream read per audience; the starting point is that audience's bookmark."""

    _tap: TapMailchimp
    is_sorted = False  # sources are merged: the bookmark is the max, set when a list is done

    @property
    def partitions(self) -> list[dict[str, Any]]:
        return [{"list_id": list_id} for list_id in self._tap.list_ids]

    def since(self, context: dict[str, Any] | None) -> str | None:
        start = self.get_starting_timestamp(context)
        return utc_iso(start) if start else None

    def inbox_events(self, context: dict[str, Any], types: Iterable[str]) -> list[InboxEvent]:
        """The audience's inbox events of these types fired at or after the bookmark.

        An event older than the bookmark was seen by an earlier poll (the member's
        `last_changed` is the moment it fired), so skipping it loses nothing.
        """
        since, wanted = self.since(context), set(types)
        single = len(self._tap.list_ids) == 1
        inbox = open_inbox(inbox_location(self.config))
        if since:
            # Bounded: events before the bookmark this run started from (one Meltano saved)
            # are never read again, by this run or a later one.
            lists = [context["list_id"], *([None] if single else [])]
            inbox.trim_mailchimp(lists, [*wanted, *self.also_trimmed], since)
        return [
            e for e in read_events(inbox)
            if e.type in wanted
            and (e.list_id == context["list_id"] or (e.list_id is None and single))
            and (since is None or e.fired_at >= since)
        ]

    also_trimmed: tuple[str, ...] = ()  # event types no stream reads, trimmed along


class MailingExclusionsStream(ListStream):
    """Members who unsubscribed or were cleaned: polled, plus webhook events from the inbox."""

    name = "mailing_exclusions"
    primary_keys = ("email",)
    also_trimmed = UNREAD_EVENTS
    replication_key = "changed_at"
    schema = th.PropertiesList(
        th.Property("list_id", th.StringType, required=True),
        th.Property("email", th.StringType, required=True),
        th.Property("status", th.StringType(allowed_values=["unsubscribed", "cleaned"]),
                    required=True),
        th.Property("changed_at", th.DateTimeType, required=True),
        th.Property("source", th.StringType(allowed_values=["poll", "webhook"]), required=True),
    ).to_dict()

    def get_records(self, context: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
        assert context is not None
        found = self._exclusions(context)
        trail = self._tap.forward_trail
        # Unsubscribes our own forward flow made are not sent back (own_opt_outs.py: no loop).
        return trail.without_ours(found) if trail else found

    def _exclusions(self, context: dict[str, Any]) -> Iterable[dict[str, Any]]:
        list_id, since = context["list_id"], self.since(context)
        # The inbox first, the poll after: every event read here fired before the poll starts,
        # so the bookmark (max of both) never passes a change the poll has not seen.
        events = self.inbox_events(context, EXCLUDING_EVENTS)
        for status in ("unsubscribed", "cleaned"):
            params = {"status": status, "fields": MEMBER_FIELDS, "sort_field": "last_changed",
                      "sort_dir": "ASC"}
            if since:
                params["since_last_changed"] = since
            for member in self._tap.reader.paginate(f"lists/{list_id}/members", "members",
                                                    params):
                if member.get("status") != status or not member.get("email_address"):
                    continue  # someone resubscribed between the filter and the page
                yield {"list_id": list_id, "email": str(member["email_address"]).lower(),
                       "status": status, "changed_at": utc_iso(member["last_changed"]),
                       "source": "poll"}
        for event in events:
            email = event.address("email")
            if email:
                yield {"list_id": list_id, "email": email,
                       "status": EXCLUDING_EVENTS[event.type], "changed_at": event.fired_at,
                       "source": "webhook"}


class TagsStream(ListStream):
    """Tags (static segments) created or changed since the bookmark."""

    name = "tags"
    primary_keys = ("segment_id",)
    replication_key = "updated_at"
    schema = th.PropertiesList(
        th.Property("list_id", th.StringType, required=True),
        th.Property("segment_id", th.IntegerType, required=True),
        th.Property("name", th.StringType, required=True),
        th.Property("member_count", th.IntegerType),
        th.Property("created_at", th.DateTimeType),
        th.Property("updated_at", th.DateTimeType, required=True),
    ).to_dict()

    def get_records(self, context: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
        assert context is not None
        list_id, since = context["list_id"], self.since(context)
        params = {"type": "static", "fields": SEGMENT_FIELDS}
        if since:
            params["since_updated_at"] = since
        for segment in self._tap.reader.paginate(f"lists/{list_id}/segments", "segments",
                                                 params):
            if segment.get("type", "static") != "static" or not segment.get("updated_at"):
                continue
            updated_at = utc_iso(segment["updated_at"])
            if since and updated_at < since:
                continue  # filtered here too, for servers that ignore since_updated_at
            yield {"list_id": list_id, "segment_id": int(segment["id"]),
                   "name": str(segment.get("name") or ""),
                   "member_count": segment.get("member_count"),
                   "created_at": utc_iso(segment["created_at"])
                   if segment.get("created_at") else None,
                   "updated_at": updated_at}


class EmailChangesStream(ListStream):
    """Address changes made in Mailchimp (`upemail` webhooks): reported, never written back."""

    name = "email_changes"
    primary_keys = ("old_email", "fired_at")
    replication_key = "fired_at"
    schema = th.PropertiesList(
        th.Property("list_id", th.StringType, required=True),
        th.Property("old_email", th.StringType, required=True),
        th.Property("new_email", th.StringType, required=True),
        th.Property("fired_at", th.DateTimeType, required=True),
    ).to_dict()

    def get_records(self, context: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
        assert context is not None
        for event in self.inbox_events(context, ("upemail",)):
            old, new = event.address("old_email"), event.address("new_email")
            if old and new:
                yield {"list_id": context["list_id"], "old_email": old, "new_email": new,
                       "fired_at": event.fired_at}


STREAM_TYPES = (MailingExclusionsStream, TagsStream, EmailChangesStream)
