"""`/3.0/lists/{id}/webhooks`: list webhooks (Mailchimp calling us back on member events)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, Response

from exactmc_sandbox.mailchimp.context import MailchimpContext, ctx
from exactmc_sandbox.mailchimp.errors import invalid, not_found, schema_invalid
from exactmc_sandbox.mailchimp.handler_tools import audience, no_content, object_body, page, respond
from exactmc_sandbox.mailchimp.state import AudienceList
from exactmc_sandbox.mailchimp.webhook_delivery import form_fields, validate_url

bp = Blueprint("mailchimp_webhooks", __name__, url_prefix="/3.0")

EVENTS = ("subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")
SOURCES = ("user", "admin", "api")


def _flags(body: dict[str, Any], name: str, keys: tuple[str, ...],
           current: dict[str, bool] | None) -> dict[str, bool]:
    given = body.get(name)
    if given is None:
        return current or dict.fromkeys(keys, True)
    if not isinstance(given, dict) or not all(isinstance(v, bool) for v in given.values()):
        raise schema_invalid([{"field": name, "message": "Schema describes object of booleans"}])
    return {k: bool(given.get(k, (current or {}).get(k, False))) for k in keys}


def _webhook(lst: AudienceList, webhook_id: str) -> dict[str, Any]:
    found = lst.webhooks.get(webhook_id)
    if found is None:
        raise not_found()
    return found


def _to_api(lst: AudienceList, webhook: dict[str, Any]) -> dict[str, Any]:
    return {**webhook, "list_id": lst.id, "_links": []}


def _checked_url(url: Any) -> str:
    if not isinstance(url, str) or urlparse(url).scheme not in ("http", "https"):
        raise schema_invalid([{"field": "url", "message": "Please enter a valid http(s) URL"}])
    if ctx().settings.validate_webhooks:
        problem = validate_url(url)  # a GET, as Mailchimp does on creation
        if problem:
            raise invalid(f"The URL did not answer our validation GET with a 2xx ({problem}).")
    return url


@bp.post("/lists/<list_id>/webhooks")
def create_webhook(list_id: str) -> Response:
    body = object_body()
    with ctx().state.lock:
        audience(list_id)
    url = _checked_url(body.get("url"))  # outside the lock: the receiver may call us back
    webhook = {"id": secrets.token_hex(5), "url": url,
               "events": _flags(body, "events", EVENTS, None),
               "sources": _flags(body, "sources", SOURCES, None)}
    with ctx().state.lock:
        lst = audience(list_id)
        lst.webhooks[webhook["id"]] = webhook
        return respond(_to_api(lst, webhook))


@bp.get("/lists/<list_id>/webhooks")
def list_webhooks(list_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        hooks = list(lst.webhooks.values())
        return respond({"webhooks": [_to_api(lst, h) for h in page(hooks)], "list_id": list_id,
                        "total_items": len(hooks), "_links": []})


@bp.get("/lists/<list_id>/webhooks/<webhook_id>")
def get_webhook(list_id: str, webhook_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        return respond(_to_api(lst, _webhook(lst, webhook_id)))


@bp.patch("/lists/<list_id>/webhooks/<webhook_id>")
def update_webhook(list_id: str, webhook_id: str) -> Response:
    body = object_body()
    with ctx().state.lock:
        _webhook(audience(list_id), webhook_id)
    url = _checked_url(body["url"]) if "url" in body else None
    with ctx().state.lock:
        lst = audience(list_id)
        webhook = _webhook(lst, webhook_id)
        webhook["url"] = url or webhook["url"]
        webhook["events"] = _flags(body, "events", EVENTS, webhook["events"])
        webhook["sources"] = _flags(body, "sources", SOURCES, webhook["sources"])
        return respond(_to_api(lst, webhook))


@bp.delete("/lists/<list_id>/webhooks/<webhook_id>")
def delete_webhook(list_id: str, webhook_id: str) -> Response:
    with ctx().state.lock:
        lst = audience(list_id)
        _webhook(lst, webhook_id)
        del lst.webhooks[webhook_id]
    return no_content()


def connect(context: MailchimpContext) -> None:
    """Route member events to every webhook that wants that event from that source."""

    def on_member_event(lst: AudienceList, event: str, member: dict[str, Any], source: str,
                        reason: str) -> None:
        for webhook in lst.webhooks.values():
            if webhook["events"].get(event) and webhook["sources"].get(source):
                fields = form_fields(event, context.clock.now().strftime("%Y-%m-%d %H:%M:%S"),
                                     lst.id, member, reason)
                context.webhooks.send(webhook["id"], webhook["url"], fields)

    context.state.on_member_event = on_member_event
