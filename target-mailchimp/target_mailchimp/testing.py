"""Test helpers: Singer messages for the target streams; running the target in-process."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from target_mailchimp.audit import AuditStore
from target_mailchimp.target import TargetMailchimp

STRING = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}
BOOL = {"type": ["boolean", "null"]}
NUMBER = {"type": ["number", "null"]}

SCHEMAS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "members": ({"properties": {
        "email": STRING, "source_key": STRING, "source_updated_at": TIME,
        "status_if_new": STRING, "opt_out": BOOL, "language": STRING, "vip": BOOL,
        "merge_fields": {"type": ["object", "null"], "additionalProperties": True},
        "company": STRING,
    }}, ["email"]),
    "tags": ({"properties": {"tag_key": STRING, "name": STRING, "active": BOOL}}, ["tag_key"]),
    "member_tags": ({"properties": {
        "email": STRING, "tag_key": STRING, "tag_name": STRING, "active": BOOL,
        "source_updated_at": TIME}}, ["email", "tag_key"]),
    "customers": ({"properties": {
        "id": STRING, "email": STRING, "opt_in_status": BOOL, "first_name": STRING,
        "last_name": STRING, "company": STRING,
        "address": {"type": ["object", "null"], "additionalProperties": True}}}, ["id"]),
    "products": ({"properties": {
        "id": STRING, "title": STRING, "sku": STRING, "price": NUMBER, "description": STRING,
        "vendor": STRING}}, ["id"]),
    "orders": ({"properties": {
        "id": STRING, "customer_id": STRING, "currency_code": STRING, "order_total": NUMBER,
        "tax_total": NUMBER, "financial_status": STRING, "processed_at_foreign": TIME,
        "updated_at_foreign": TIME, "cancelled_at_foreign": TIME,
        "lines": {"type": ["array", "null"], "items": {"type": "object",
                                                       "additionalProperties": True}}}},
               ["id"]),
    "deletions": ({"properties": {"entity": STRING, "key": STRING, "deleted_at": TIME,
                                  "action": STRING}}, ["entity", "key"]),
}


def schema(stream: str) -> dict[str, Any]:
    props, keys = SCHEMAS[stream]
    return {"type": "SCHEMA", "stream": stream, "schema": {"type": "object", **props},
            "key_properties": keys}


def records(stream: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "RECORD", "stream": stream, "record": row} for row in rows]


def stream(stream_name: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [schema(stream_name), *records(stream_name, rows)]


def state(value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


def to_lines(messages: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def base_config(sandbox: Any, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "api_key": sandbox.api_key,
        "base_url": sandbox.api_base,
        "list_id": sandbox.list_id,
        "store_id": "exact-store",
        "store_name": "Exact",
        "default_status_if_new": "subscribed",
        "audit_store_url": f"sqlite:///{tmp_path}/audit.sqlite",
        "batch_poll_interval": 0.05,
        "retry_backoff_factor": 0.01,
        **overrides,
    }


def run_target(config: dict[str, Any], messages: Iterable[dict[str, Any]]) -> list[dict]:
    """Run the target in-process; returns the STATE values it emitted."""
    out = io.StringIO()
    target = TargetMailchimp(config=config)
    with contextlib.redirect_stdout(out):
        target.listen(io.StringIO(to_lines(messages)))
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def audit_rows(config: dict[str, Any], **filters: Any) -> list[dict[str, Any]]:
    store = AuditStore(config["audit_store_url"], "inspect")
    try:
        return store.entries(**filters)
    finally:
        store.close()


def by_email(sandbox: Any) -> dict[str, dict[str, Any]]:
    return {m["email_address"]: m for m in sandbox.members()}
