"""`/3.0/lists/{id}/segments...`: static segments, which is what Mailchimp tags are."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from exactmc_sandbox.mailchimp.context import ctx
from exactmc_sandbox.mailchimp.emails import subscriber_hash
from exactmc_sandbox.mailchimp.errors import invalid, not_found, schema_invalid
from exactmc_sandbox.mailchimp.handler_tools import (
    audience,
    no_content,
    object_body,
    page,
    respond,
    selected_keys,
)
from exactmc_sandbox.mailchimp.member_ops import MemberWriter, member_to_api
from exactmc_sandbox.mailchimp.state import AudienceList, Member, Segment, members_changed

bp = Blueprint("mailchimp_segments", __name__, url_prefix="/3.0")

MAX_EMAILS = 500


def _segment(lst: AudienceList, segment_id: str) -> Segment:
    found = lst.segments.get(int(segment_id)) if segment_id.isdigit() else None
    if found is None:
        raise not_found()
    return found


def _tagged(lst: AudienceList, segment: Segment) -> list[Member]:
    return [m for m in lst.members.values() if m.has_tag(segment.id)]


def segment_to_api(lst: AudienceList, segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id, "name": segment.name,
        "member_count": sum(1 for m in _tagged(lst, segment) if m.status != "archived"),
        "type": "static", "created_at": segment.created_at, "updated_at": segment.updated_at,
        "options": {}, "list_id": lst.id, "_links": [],
    }


def _emails(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise schema_invalid([{"field": name, "message": "Schema describes array of strings"}])
    if len(value) > MAX_EMAILS:
        raise schema_invalid([{"field": name, "message": f"Schema describes array of at most "
                               f"{MAX_EMAILS} items, {len(value)} found instead"}])
    return value


def _set_members(
    writer: MemberWriter, segment: Segment, emails: list[str], active: bool,
) -> tuple[list[Member], list[str]]:
    """Tag or untag each address; returns (members changed, addresses not on the list)."""
    changed, missing = [], []
    for email in emails:
        member = writer.audience.members.get(subscriber_hash(email))
        if member is None or member.status == "archived":
            missing.append(email)
        elif writer.set_tag(member, segment.id, active):
            changed.append(member)
    return changed, missing


@bp.get("/lists/<list_id>/segments")
def list_segments(list_id: str) -> Response:
    wanted = request.args.get("type")
    with ctx().state.lock:
        lst = audience(list_id)
        segments = [] if wanted not in (None, "", "static") else list(lst.segments.values())
        return respond({"segments": [segment_to_api(lst, s) for s in page(segments)],
                        "list_id": list_id, "total_items": len(segments), "_links": []})


@bp.post("/lists/<list_id>/segments")
def create_segment(list_id: str) -> Response:
    body = object_body()
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise schema_invalid([{"field": "name", "message": "This value should not be blank."}])
        if "static_segment" not in body:
            # Saved (condition-based) segments are not simulated: the project only uses tags.
            raise invalid("This sandbox only supports static segments (tags): "
                          "send static_segment.")
        emails = _emails(body, "static_segment")
        if lst.segment_by_name(name) is not None:
            raise invalid(f"A tag or segment named \"{name}\" already exists.")
        writer = MemberWriter(state, lst)
        segment = lst.segments[writer.tag_id(name)]
        _set_members(writer, segment, emails, True)
        return respond(segment_to_api(lst, segment))


@bp.get("/lists/<list_id>/segments/<segment_id>")
def get_segment(list_id: str, segment_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        return respond(segment_to_api(lst, _segment(lst, segment_id)))


@bp.patch("/lists/<list_id>/segments/<segment_id>")
def update_segment(list_id: str, segment_id: str) -> Response:
    body = object_body()
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        segment = _segment(lst, segment_id)
        writer = MemberWriter(state, lst)
        name = body.get("name")
        if name is not None:
            if not isinstance(name, str) or not name.strip() or len(name) > 100:
                raise schema_invalid([{"field": "name", "message": "1 to 100 characters"}])
            other = lst.segment_by_name(name)
            if other is not None and other.id != segment.id:
                raise invalid(f"A tag or segment named \"{name}\" already exists.")
            if name != segment.name:
                # Renaming the segment renames the tag on every member: it is the same object.
                segment.name = name.strip()
                now = state.clock.iso()
                segment.updated_at = now
                for member in _tagged(lst, segment):
                    member.last_changed = now
                members_changed()  # cached member reads filter on last_changed
        if "static_segment" in body:  # replaces the segment's members
            wanted = {subscriber_hash(e) for e in _emails(body, "static_segment")}
            for key, member in lst.members.items():
                if member.status != "archived":
                    writer.set_tag(member, segment.id, key in wanted)
        return respond(segment_to_api(lst, segment))


@bp.delete("/lists/<list_id>/segments/<segment_id>")
def delete_segment(list_id: str, segment_id: str) -> Response:
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        segment = _segment(lst, segment_id)
        writer = MemberWriter(state, lst)
        for member in _tagged(lst, segment):
            writer.set_tag(member, segment.id, False)
        del lst.segments[segment.id]
    return no_content()


@bp.post("/lists/<list_id>/segments/<segment_id>")
def batch_segment_members(list_id: str, segment_id: str) -> Response:
    body = object_body()
    to_add, to_remove = _emails(body, "members_to_add"), _emails(body, "members_to_remove")
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        segment = _segment(lst, segment_id)
        writer = MemberWriter(state, lst)
        added, missing_add = _set_members(writer, segment, to_add, True)
        removed, missing_remove = _set_members(writer, segment, to_remove, False)
        errors = [{"email_addresses": missing, "error": "Email addresses do not belong to "
                   "this list or are archived"}
                  for missing in (missing_add, missing_remove) if missing]
        # With `fields`, only the selected keys of each member are built (respond() applies
        # the selection itself; this only spares building what it would drop; issue 9).
        added_keys, removed_keys = selected_keys("members_added"), selected_keys("members_removed")
        return respond({
            "members_added": [member_to_api(lst, m, added_keys) for m in added],
            "members_removed": [member_to_api(lst, m, removed_keys) for m in removed],
            "errors": errors,
            "total_added": len(added),
            "total_removed": len(removed),
            "error_count": sum(len(e["email_addresses"]) for e in errors),
            "_links": [],
        })


@bp.get("/lists/<list_id>/segments/<segment_id>/members")
def segment_members(list_id: str, segment_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        members = [m for m in _tagged(lst, _segment(lst, segment_id)) if m.status != "archived"]
        return respond({"members": [member_to_api(lst, m) for m in page(members)],
                        "total_items": len(members), "_links": []})
