"""Test helpers: Singer messages of the contract's streams; the target run in-process."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from secret_store import generate_key

from target_exactonline.audit import AuditTrail
from target_exactonline.target import TargetExactOnline

STRING = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}
INTEGER = {"type": ["integer", "null"]}

SCHEMAS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "mailing_exclusions": ({"email": STRING, "status": STRING, "changed_at": TIME,
                            "source": STRING, "list_id": STRING}, ["email"]),
    "tags": ({"segment_id": INTEGER, "name": STRING, "member_count": INTEGER,
              "created_at": TIME, "updated_at": TIME, "list_id": STRING}, ["segment_id"]),
    "email_changes": ({"old_email": STRING, "new_email": STRING, "fired_at": TIME,
                       "list_id": STRING}, ["old_email", "fired_at"]),
}


def stream(name: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    props, keys = SCHEMAS[name]
    return [{"type": "SCHEMA", "stream": name, "key_properties": keys,
             "schema": {"type": "object", "properties": props}},
            *({"type": "RECORD", "stream": name, "record": row} for row in rows)]


def base_config(sandbox: Any, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "refresh_token": sandbox.issue_refresh_token("nl"),
        "base_url": sandbox.base_url("nl"),
        "token_store_path": str(tmp_path / "store"),
        "token_store_key": generate_key(),
        "audit_store_url": f"sqlite:///{tmp_path}/audit.sqlite",
        "retry_initial_wait": 0.05,
        "max_retries": 3,
        "request_timeout": 5,
        "token_timeout": 5,
        **overrides,
    }


def run_target(config: dict[str, Any], messages: Iterable[dict[str, Any]]) -> list[dict]:
    """Run the target in-process (real HTTP to the sandbox); returns what it printed."""
    out = io.StringIO()
    target = TargetExactOnline(config=config)
    lines = "".join(json.dumps(m) + "\n" for m in messages)
    with contextlib.redirect_stdout(out):
        target.listen(io.StringIO(lines))
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def audit_rows(config: dict[str, Any], **filters: Any) -> list[dict[str, Any]]:
    trail = AuditTrail(config["audit_store_url"], "inspect")
    try:
        return trail.entries(**filters)
    finally:
        trail.close()
