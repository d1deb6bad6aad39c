"""Helpers for tests: run the tap in-process, shape and record Mailchimp webhook events."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from tap_mailchimp.inbox import open_inbox
from tap_mailchimp.tap import TapMailchimp


def run_tap(config: dict[str, Any], state: dict[str, Any] | None = None
            ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """({stream: [record, ...]}, last STATE value) of one in-process run."""
    out = io.StringIO()
    tap = TapMailchimp(config=config, state=state or {})
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    records: dict[str, list[dict[str, Any]]] = {}
    last_state: dict[str, Any] = {}
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records.setdefault(message["stream"], []).append(message["record"])
        elif message["type"] == "STATE":
            last_state = message["value"]
    return records, last_state


def inbox_line(form: dict[str, str]) -> str:
    """A delivery's form fields (`data[email]`, `data[merges][FNAME]`) as an inbox line with a
    `data` object, the shape this tap documents (exactmc-webhooks writes the fields flat)."""
    data: dict[str, Any] = {}
    for name, value in form.items():
        if name.startswith("data[") and "[merges]" not in name:
            data[name[5:-1]] = value
    return json.dumps({"type": form["type"], "fired_at": form["fired_at"], "data": data})


def record_events(location: str | Path, lines: list[str]) -> None:
    """Record inbox entries (JSON objects) at `location` as the webhook service does."""
    inbox = open_inbox(str(location))
    for line in lines:
        inbox.add_mailchimp(json.loads(line), hashlib.sha256(line.encode()).hexdigest())
