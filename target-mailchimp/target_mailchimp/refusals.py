"""Which failed writes are worth sending again, and how to name a refusal without personal data.

A refusal is *permanent* when sending the same request again cannot succeed: Mailchimp judged
the address itself (fake-looking, erased for good, in a compliance state) or the payload breaks
its schema. Everything else (a 400 Mailchimp gives for a while, e.g. "signed up to a lot of lists
very recently", an order line whose product is still missing, an outage) is *retriable*.
"""

from __future__ import annotations

import re
from typing import Any

from target_mailchimp.audit import FAILED

RETRIABLE, PERMANENT, BAD_INPUT = "retriable", "permanent", "bad input"

# Lower-case fragments of Mailchimp's answers (reference: mailchimp-api.md, errors).
PERMANENT_MARKERS = (
    "looks fake or invalid",                  # Invalid Resource for the address itself
    "forgotten email not subscribed",         # erased (GDPR): never re-importable
    "permanently deleted and cannot be re-imported",
    "member in compliance state",             # unsubscribed/cleaned: only the person can undo
    "in a compliance state",
    "schema describes",                       # the body breaks the schema: same body, same no
    "merge fields were invalid",
    "does not match the id in the url",
)
# Fixable by other writes or by time, even though some come with an `errors` list.
RETRIABLE_MARKERS = (
    "product with the provided variant id does not exist",
    "signed up to a lot of lists very recently",
)

_EMAIL = re.compile(r"[^\s@<>\"'(),;:\[\]]+@[^\s@<>\"'(),;:\[\]]+")
_HASH = re.compile(r"\b[0-9a-f]{32}\b")


def last_error(row: dict[str, Any]) -> str:
    """The newest refusal of a failed write: its last re-send's answer, else the original."""
    if row.get("replay_outcome") == FAILED and row.get("replay_response"):
        return str(row["replay_response"])
    return str(row.get("reason") or row.get("response") or "unknown")


def classify(row: dict[str, Any]) -> str:
    if not row.get("method") or not row.get("path"):
        return BAD_INPUT  # no request to send: the record itself must be fixed at the source
    text = last_error(row).lower()
    if any(marker in text for marker in RETRIABLE_MARKERS):
        return RETRIABLE
    if any(marker in text for marker in PERMANENT_MARKERS):
        return PERMANENT
    return RETRIABLE


def public_reason(text: str, limit: int = 90) -> str:
    """A reason fit for a log line: no email addresses or member hashes, short."""
    text = _HASH.sub("<hash>", _EMAIL.sub("<email>", " ".join(text.split())))
    return text if len(text) <= limit else text[: limit - 1] + "…"
