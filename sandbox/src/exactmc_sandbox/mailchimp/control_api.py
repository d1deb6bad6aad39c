"""The OAuth metadata endpoint and the `/_sandbox/...` inspection and control endpoints."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from exactmc_sandbox.mailchimp.context import ctx
from exactmc_sandbox.mailchimp.emails import subscriber_hash
from exactmc_sandbox.mailchimp.errors import not_found
from exactmc_sandbox.mailchimp.handler_tools import audience, object_body
from exactmc_sandbox.mailchimp.member_ops import MemberWriter, owner_source
from exactmc_sandbox.mailchimp.state import AudienceList, Member

bp = Blueprint("mailchimp_control", __name__)


@bp.get("/oauth2/metadata")
def oauth_metadata() -> Response:
    """login.mailchimp.com's metadata: which data center a token belongs to."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "oauth" or not ctx().auth.is_valid_token(token.strip()):
        return jsonify({"error": "invalid_token"})  # the real service answers 200 here
    base = request.host_url.rstrip("/")
    return jsonify({
        "dc": ctx().settings.dc, "role": "owner", "accountname": "Exact Sandbox Company",
        "user_id": 1, "api_endpoint": base,
        "login": {"email": "owner@sandbox.invalid", "avatar": None, "login_id": 1,
                  "login_name": "sandbox-owner", "login_email": "owner@sandbox.invalid"},
        "login_url": f"{base}/login",
    })


def member_dump(lst: AudienceList, member: Member) -> dict[str, Any]:
    return {
        "id": subscriber_hash(member.email_address),
        "email_address": member.email_address,
        "status": member.status,
        "merge_fields": dict(member.merge_fields),
        "tags": [lst.segments[s].name for s in member.tags if s in lst.segments],
        "language": member.language,
        "vip": member.vip,
        "last_changed": member.last_changed,
    }


@bp.get("/_sandbox/lists/<list_id>/members")
def dump_members(list_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        return jsonify({
            "list_id": list_id,
            "members": [member_dump(lst, m) for m in lst.members.values()],
            "forgotten": sorted(lst.forgotten),
            "tags": {s.id: s.name for s in lst.segments.values()},
        })


@bp.get("/_sandbox/lists/<list_id>/count")
def count_members(list_id: str) -> Response:
    """How many members the audience holds, without listing them (cheap enough to poll)."""
    with ctx().state.lock:
        return jsonify({"members": len(audience(list_id).members)})


@bp.post("/_sandbox/lists/<list_id>/members/<member_key>/status")
def set_status(list_id: str, member_key: str) -> Response:
    body = object_body()
    status = str(body.get("status"))
    source = str(body.get("source") or owner_source(status))
    key = subscriber_hash(member_key) if "@" in member_key else member_key.lower()
    state = ctx().state
    with state.lock:
        lst = audience(list_id)
        member = MemberWriter(state, lst, source).set_status_as_owner(key, status)
        return jsonify(member_dump(lst, member))


@bp.get("/_sandbox/ecommerce/stores/<store_id>")
def dump_store(store_id: str) -> Response:
    from exactmc_sandbox.mailchimp.ecommerce_api import store_to_api

    with ctx().state.lock:
        store = ctx().state.stores.get(store_id)
        if store is None:
            raise not_found()
        return jsonify({
            "store": store_to_api(store),
            "customers": list(store.customers.values()),
            "products": list(store.products.values()),
            "orders": list(store.orders.values()),
        })


@bp.get("/_sandbox/webhooks/deliveries")
def webhook_deliveries() -> Response:
    return jsonify(ctx().webhooks.log())


@bp.post("/_sandbox/clock/advance")
def advance_clock() -> Response:
    """Move the simulator's clock forward so timestamps change without sleeping."""
    seconds = float(object_body().get("seconds", 1))
    ctx().clock.advance(seconds)
    return jsonify({"now": ctx().clock.iso()})
