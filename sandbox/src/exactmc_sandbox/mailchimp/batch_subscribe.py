"""`POST /3.0/lists/{list_id}`: subscribe or update up to 500 members in one call."""

from __future__ import annotations

from typing import Any

from exactmc_sandbox.mailchimp.emails import subscriber_hash
from exactmc_sandbox.mailchimp.errors import ApiError, schema_invalid
from exactmc_sandbox.mailchimp.handler_tools import selected_keys
from exactmc_sandbox.mailchimp.member_ops import MemberWriter, check_tag_name, member_to_api
from exactmc_sandbox.mailchimp.state import AccountState, AudienceList

MAX_MEMBERS = 500


def _error(email: Any, message: str, code: str = "ERROR_GENERIC", field: str = "",
           field_message: str = "") -> dict[str, Any]:
    return {"email_address": email, "error": message, "error_code": code,
            "field": field, "field_message": field_message}


def _error_from(email: str, exc: ApiError) -> dict[str, Any]:
    first = (exc.errors or [{}])[0]
    return _error(email, exc.detail, field=first.get("field", ""),
                  field_message=first.get("message", ""))


def batch_subscribe(
    state: AccountState, lst: AudienceList, body: dict[str, Any], *,
    skip_merge_validation: bool, skip_duplicate_check: bool,
) -> dict[str, Any]:
    """The response Mailchimp gives; per-member problems land in `errors`, not in the status.

    Duplicates in one request (unconfirmed): with skip_duplicate_check the first appearance wins
    and later ones are ignored; without it they are processed in order like separate calls.
    A new member given both `status` and `status_if_new` gets `status` here (unconfirmed; PUT
    does the opposite, see `MemberWriter.upsert`).
    """
    members = body.get("members")
    if not isinstance(members, list):
        raise schema_invalid([{"field": "members", "message": "Schema describes array, "
                               f"{type(members).__name__} found instead"}])
    if len(members) > MAX_MEMBERS:
        raise schema_invalid([{"field": "members", "message": "Schema describes array of at "
                               f"most {MAX_MEMBERS} items, {len(members)} found instead"}])
    update_existing = bool(body.get("update_existing", False))
    sync_tags = bool(body.get("sync_tags", False))
    writer = MemberWriter(state, lst)
    created: dict[str, Any] = {}
    updated: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in members:
        email = item.get("email_address") if isinstance(item, dict) else None
        if not isinstance(email, str) or not email:
            errors.append(_error(email, "An email address must be provided.",
                                 field="email_address", field_message="required"))
            continue
        key = subscriber_hash(email)
        if key in seen and skip_duplicate_check:
            continue
        seen.add(key)
        existing = lst.members.get(key)
        if existing is not None and existing.status != "archived" and not update_existing:
            errors.append(_error(
                email, f"{email} is already a list member, do you want to update? please "
                "provide update_existing:true in the request body", "ERROR_CONTACT_EXISTS"))
            continue
        try:
            _check_tags(item.get("tags"))  # before any change: a refusal changes nothing
            member, was_new = writer.upsert(
                email, {k: v for k, v in item.items() if k != "tags"},
                skip_merge_validation=skip_merge_validation, status_required_field="status")
            _apply_tags(writer, member, item.get("tags"), sync_tags)
        except ApiError as exc:
            errors.append(_error_from(email, exc))
            continue
        if was_new and key not in updated:
            created[key] = member
        elif key not in created:
            updated[key] = member
    # With `fields`, only the selected keys of each member are built (respond() applies the
    # selection itself; this only spares building what it would drop; issue 9).
    new_keys, updated_keys = selected_keys("new_members"), selected_keys("updated_members")
    return {
        "new_members": [member_to_api(lst, m, new_keys) for m in created.values()],
        "updated_members": [member_to_api(lst, m, updated_keys) for m in updated.values()],
        "errors": errors,
        "total_created": len(created),
        "total_updated": len(updated),
        "error_count": len(errors),
        "_links": [],
    }


def _check_tags(tags: Any) -> None:
    if tags is None:
        return
    if not isinstance(tags, list):
        raise schema_invalid([{"field": "tags", "message": "Schema describes array"}])
    for name in tags:
        check_tag_name(name)


def _apply_tags(writer: MemberWriter, member: Any, tags: Any, sync_tags: bool) -> None:
    """Per-member `tags` (names) add tags; with sync_tags they replace the member's tags."""
    if tags is None:
        return
    wanted = {writer.tag_id(name) for name in tags}
    if sync_tags:
        for segment_id in list(member.tags):
            if segment_id not in wanted:
                writer.set_tag(member, segment_id, False)
    for segment_id in wanted:
        writer.set_tag(member, segment_id, True)
