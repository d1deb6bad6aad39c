"""`/3.0/lists/{list_id}/members...`: member reads, upserts, archive, erase and member tags."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from exactmc_sandbox.mailchimp.clock import parse_time
from exactmc_sandbox.mailchimp.context import ctx
from exactmc_sandbox.mailchimp.emails import subscriber_hash
from exactmc_sandbox.mailchimp.errors import invalid, not_found, schema_invalid
from exactmc_sandbox.mailchimp.handler_tools import (
    audience,
    flag,
    no_content,
    object_body,
    page,
    respond,
    selected_keys,
)
from exactmc_sandbox.mailchimp.member_ops import MemberWriter, check_tag_name, member_to_api
from exactmc_sandbox.mailchimp.state import STATUSES, Member

bp = Blueprint("mailchimp_members", __name__, url_prefix="/3.0")

SORT_FIELDS = {"timestamp_opt", "timestamp_signup", "last_changed"}


def _hash_of(path_value: str) -> str:
    """The path accepts a subscriber hash or the address itself (as the real API does)."""
    return subscriber_hash(path_value) if "@" in path_value else path_value.lower()


def _member_or_404(list_id: str, path_value: str) -> Any:
    found = audience(list_id).members.get(_hash_of(path_value))
    if found is None:
        raise not_found()
    return found


@bp.get("/lists/<list_id>/members")
def list_members(list_id: str) -> Response:
    state = ctx().state
    status = request.args.get("status")
    if status and status not in (*STATUSES, "archived"):
        raise invalid(f"Invalid status filter {status!r}")
    since = request.args.get("since_last_changed")
    sort_field = request.args.get("sort_field")
    if sort_field and sort_field not in SORT_FIELDS:
        raise invalid(f"sort_field must be one of {', '.join(sorted(SORT_FIELDS))}")
    try:
        since_time = parse_time(since) if since else None
    except ValueError as exc:
        raise invalid(f"since_last_changed is not an ISO 8601 time: {since!r}") from exc
    keys = selected_keys("members")
    descending = request.args.get("sort_dir", "ASC").upper() == "DESC"

    def matching() -> list[Member]:
        members = [
            m for m in lst.members.values()
            if (m.status == status if status else m.status != "archived")
            # ">=" (unconfirmed; the docs say "after"): with one-second timestamps, ">" could
            # lose a change made in the same second as the previous sync's bookmark.
            and (since_time is None or parse_time(m.last_changed) >= since_time)
        ]
        if sort_field:
            members.sort(key=lambda m: getattr(m, sort_field) or "", reverse=descending)
        return members

    with state.lock:
        lst = audience(list_id)
        members = lst.filtered(
            ("members", status, since_time, sort_field, sort_field and descending), matching)
        body = {
            "members": [member_to_api(lst, m, keys) for m in page(members)],
            "list_id": list_id,
            "total_items": len(members),
            "_links": [],
        }
    return respond(body)


@bp.post("/lists/<list_id>/members")
def create_member(list_id: str) -> Response:
    body = object_body()
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        email = body.get("email_address")
        if not isinstance(email, str) or not email:
            raise schema_invalid([{"field": "email_address",
                                   "message": "This value should not be blank."}])
        tags = body.get("tags") or []
        if not isinstance(tags, list):
            raise schema_invalid([{"field": "tags", "message": "Schema describes array"}])
        for name in tags:
            check_tag_name(name)
        writer = MemberWriter(state, lst)
        member, _ = writer.upsert(email, body, allow_update=False,
                                  skip_merge_validation=flag("skip_merge_validation"),
                                  status_required_field="status")
        for name in tags:  # POST (unlike PUT) accepts tag names
            writer.set_tag(member, writer.tag_id(name), True)
        return respond(member_to_api(lst, member))


@bp.get("/lists/<list_id>/members/<member_key>")
def get_member(list_id: str, member_key: str) -> Response:
    with ctx().state.lock:
        return respond(member_to_api(audience(list_id), _member_or_404(list_id, member_key)))


@bp.put("/lists/<list_id>/members/<member_key>")
def put_member(list_id: str, member_key: str) -> Response:
    body = object_body()
    state = ctx().state
    key = _hash_of(member_key)
    with state.lock:
        lst = audience(list_id)
        existing = lst.members.get(key)
        email = body.get("email_address") or (existing.email_address if existing else None)
        if not isinstance(email, str) or not email:
            raise schema_invalid([{"field": "email_address",
                                   "message": "This value should not be blank."}])
        if subscriber_hash(email) != key:
            raise invalid(
                f"The subscriber hash in the URL does not match the email address {email}. "
                "Use the MD5 hash of the lowercase version of the email address."
            )
        member, _ = MemberWriter(state, lst).upsert(
            email, body, skip_merge_validation=flag("skip_merge_validation"),
            status_if_new_first=True)
        return respond(member_to_api(lst, member))


@bp.patch("/lists/<list_id>/members/<member_key>")
def patch_member(list_id: str, member_key: str) -> Response:
    body = object_body()
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        member = _member_or_404(list_id, member_key)
        writer = MemberWriter(state, lst)
        new_email = body.get("email_address")
        if member.status != "archived" and isinstance(new_email, str) and (
                new_email.lower() != member.email_address.lower()):
            writer.change_email(member, new_email)
        member, _ = writer.upsert(member.email_address,
                                  {k: v for k, v in body.items() if k != "email_address"},
                                  skip_merge_validation=flag("skip_merge_validation"),
                                  status_required_field="status")
        return respond(member_to_api(lst, member))


@bp.delete("/lists/<list_id>/members/<member_key>")
def archive_member(list_id: str, member_key: str) -> Response:
    state = ctx().state
    with state.lock:
        MemberWriter(state, audience(list_id)).archive(_hash_of(member_key))
    return no_content()


@bp.post("/lists/<list_id>/members/<member_key>/actions/delete-permanent")
def delete_member_permanently(list_id: str, member_key: str) -> Response:
    state = ctx().state
    with state.lock:
        MemberWriter(state, audience(list_id)).delete_permanently(_hash_of(member_key))
    return no_content()


@bp.get("/lists/<list_id>/members/<member_key>/tags")
def member_tags(list_id: str, member_key: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        member = _member_or_404(list_id, member_key)
        tags = [{"id": seg_id, "name": lst.segments[seg_id].name, "date_added": added}
                for seg_id, added in member.tags.items() if seg_id in lst.segments]
        return respond({"tags": page(tags), "total_items": len(tags), "_links": []})


@bp.post("/lists/<list_id>/members/<member_key>/tags")
def update_member_tags(list_id: str, member_key: str) -> Response:
    body = object_body()
    tags = body.get("tags")
    if not isinstance(tags, list):
        raise schema_invalid([{"field": "tags", "message": "Schema describes array"}])
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        member = _member_or_404(list_id, member_key)
        writer = MemberWriter(state, lst)
        changes = []
        for tag in tags:  # validate everything before changing anything
            if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
                raise schema_invalid([{"field": "tags.name", "message": "name is required"}])
            if tag.get("status") not in ("active", "inactive"):
                raise schema_invalid([{"field": "tags.status",
                                       "message": "status must be active or inactive"}])
            changes.append((check_tag_name(tag["name"]), tag["status"] == "active"))
        for name, active in changes:
            existing = lst.segment_by_name(name)
            if not active and existing is None:
                continue
            segment_id = existing.id if existing else writer.tag_id(name)
            writer.set_tag(member, segment_id, active)
    return no_content()

