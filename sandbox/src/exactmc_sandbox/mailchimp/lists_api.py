"""`/3.0/ping`, `/3.0/lists[/{id}]` (incl. batch subscribe), merge fields and tag search."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request

from exactmc_sandbox.mailchimp.batch_subscribe import batch_subscribe
from exactmc_sandbox.mailchimp.context import ctx
from exactmc_sandbox.mailchimp.errors import invalid, not_found, schema_invalid
from exactmc_sandbox.mailchimp.handler_tools import (
    audience,
    flag,
    no_content,
    object_body,
    page,
    respond,
)
from exactmc_sandbox.mailchimp.state import AudienceList, MergeField

bp = Blueprint("mailchimp_lists", __name__, url_prefix="/3.0")

MERGE_TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio",
               "dropdown", "birthday", "zip")
TAG_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,9}$")  # uppercase, at most 10 characters


@bp.get("/ping")
def ping() -> Response:
    return respond({"health_status": "Everything's Chimpy!"})


@bp.get("/")
def account_root() -> Response:
    settings = ctx().settings
    return respond({"account_id": "sandbox", "account_name": "Exact Sandbox Company",
                    "email": "owner@sandbox.invalid", "role": "owner", "dc": settings.dc,
                    "total_subscribers": sum(
                        len(lst.members) for lst in ctx().state.lists.values())})


def list_to_api(lst: AudienceList) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for member in lst.members.values():
        counts[member.status] = counts.get(member.status, 0) + 1
    return {
        "id": lst.id, "web_id": lst.web_id, "name": lst.name, "date_created": lst.date_created,
        "permission_reminder": "You bought something from us.", "email_type_option": False,
        "double_optin": False, "marketing_permissions": False,
        "contact": {"company": "Exact Sandbox Company", "country": "NL"},
        "campaign_defaults": {"from_name": "Sandbox", "from_email": "news@sandbox.invalid",
                              "subject": "", "language": "en"},
        "stats": {"member_count": counts.get("subscribed", 0),
                  "unsubscribe_count": counts.get("unsubscribed", 0),
                  "cleaned_count": counts.get("cleaned", 0),
                  "total_contacts": len(lst.members),
                  "merge_field_count": len(lst.merge_fields)},
        "_links": [],
    }


@bp.get("/lists")
def get_lists() -> Response:
    with ctx().state.lock:
        lists = list(ctx().state.lists.values())
        return respond({"lists": [list_to_api(lst) for lst in page(lists)],
                        "total_items": len(lists), "_links": []})


@bp.get("/lists/<list_id>")
def get_list(list_id: str) -> Response:
    with ctx().state.lock:
        return respond(list_to_api(audience(list_id)))


@bp.post("/lists/<list_id>")
def post_batch_subscribe(list_id: str) -> Response:
    body = object_body()
    state = ctx().state
    with state.lock:
        result = batch_subscribe(
            state, audience(list_id), body,
            skip_merge_validation=flag("skip_merge_validation"),
            skip_duplicate_check=flag("skip_duplicate_check"),
        )
    return respond(result)


# --- merge fields ----------------------------------------------------------------------------
def _merge_field(lst: AudienceList, merge_id: str) -> MergeField:
    found = lst.merge_fields.get(int(merge_id)) if merge_id.isdigit() else None
    if found is None:
        raise not_found()
    return found


@bp.get("/lists/<list_id>/merge-fields")
def get_merge_fields(list_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        fields = sorted(lst.merge_fields.values(), key=lambda f: f.display_order)
        wanted = request.args.get("type")
        if wanted:
            fields = [f for f in fields if f.type == wanted]
        return respond({"merge_fields": [f.to_api(list_id) for f in page(fields)],
                        "list_id": list_id, "total_items": len(fields), "_links": []})


@bp.post("/lists/<list_id>/merge-fields")
def create_merge_field(list_id: str) -> Response:
    body = object_body()
    with ctx().state.lock:
        lst = audience(list_id)
        name, field_type = body.get("name"), body.get("type")
        if not isinstance(name, str) or not name.strip():
            raise schema_invalid([{"field": "name", "message": "This value should not be blank."}])
        if field_type not in MERGE_TYPES:
            raise schema_invalid([{"field": "type",
                                   "message": f"type must be one of {', '.join(MERGE_TYPES)}"}])
        tag = str(body.get("tag") or re.sub(r"[^A-Z0-9]", "", name.upper())[:10] or "MERGE")
        tag = tag.upper()
        if not TAG_PATTERN.match(tag):
            raise invalid(f"The merge tag {tag!r} must be uppercase letters, digits or "
                          "underscores, at most 10 characters.")
        if lst.merge_field_by_tag(tag) is not None:
            raise invalid(f"A Merge Field with the tag \"{tag}\" already exists for this list.")
        merge_id = max(lst.merge_fields, default=0) + 1
        field = MergeField(
            merge_id, tag, name.strip(), field_type, required=bool(body.get("required", False)),
            default_value=str(body.get("default_value") or ""),
            public=bool(body.get("public", False)),
            display_order=max((f.display_order for f in lst.merge_fields.values()),
                              default=1) + 1,
            options=body.get("options") or {}, help_text=str(body.get("help_text") or ""),
        )
        lst.merge_fields[merge_id] = field
        return respond(field.to_api(list_id))


@bp.get("/lists/<list_id>/merge-fields/<merge_id>")
def get_merge_field(list_id: str, merge_id: str) -> Response:
    with ctx().state.lock:
        return respond(_merge_field(audience(list_id), merge_id).to_api(list_id))


@bp.patch("/lists/<list_id>/merge-fields/<merge_id>")
def update_merge_field(list_id: str, merge_id: str) -> Response:
    body = object_body()
    with ctx().state.lock:
        field = _merge_field(audience(list_id), merge_id)
        if "tag" in body and str(body["tag"]).upper() != field.tag:
            raise invalid("The merge tag of an existing merge field cannot be changed here.")
        for name in ("name", "default_value", "help_text"):
            if name in body:
                setattr(field, name, str(body[name]))
        for name in ("required", "public"):
            if name in body:
                setattr(field, name, bool(body[name]))
        if isinstance(body.get("options"), dict):
            field.options.update(body["options"])
        if isinstance(body.get("display_order"), int):
            field.display_order = body["display_order"]
        return respond(field.to_api(list_id))


@bp.delete("/lists/<list_id>/merge-fields/<merge_id>")
def delete_merge_field(list_id: str, merge_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        field = _merge_field(lst, merge_id)
        del lst.merge_fields[field.merge_id]
        for member in lst.members.values():
            values = member.merge_fields
            if values.pop(field.tag, None) is not None:
                member.merge_fields = values
    return no_content()


@bp.get("/lists/<list_id>/tag-search")
def tag_search(list_id: str) -> Response:
    prefix = request.args.get("name", "").lower()
    with ctx().state.lock:
        lst = audience(list_id)
        tags = [{"id": s.id, "name": s.name} for s in lst.segments.values()
                if s.name.lower().startswith(prefix)]
        return respond({"tags": tags, "total_items": len(tags)})
