"""Merge fields: which exist on the audience, creating missing ones before members use them."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from target_mailchimp.client import ApiError, MailchimpClient

LOGGER = logging.getLogger("target_mailchimp.merge_fields")
# Mailchimp merge tags: upper-case letters, digits and underscores, at most 10 characters.
TAG_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,9}$")
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
TEXT_LIMIT = 255


@dataclass(frozen=True)
class MergeFieldSpec:
    property: str
    tag: str
    type: str = "text"
    name: str | None = None


def parse_merge_field_map(raw: Mapping[str, Any] | None) -> dict[str, MergeFieldSpec]:
    """`{"company": "COMPANY"}` or `{"company": {"tag": "COMPANY", "type": "text"}}`."""
    specs = {}
    for prop, value in (raw or {}).items():
        spec = (
            MergeFieldSpec(prop, str(value).upper())
            if isinstance(value, str)
            else MergeFieldSpec(prop, str(value["tag"]).upper(), value.get("type", "text"),
                                value.get("name"))
        )
        if not TAG_PATTERN.match(spec.tag):
            raise ValueError(f"merge_field_map: {spec.tag!r} is not a valid merge tag "
                             "(A-Z, 0-9, _; at most 10 characters)")
        specs[prop] = spec
    return specs


def clean_address(value: Any) -> tuple[dict[str, str] | None, str | None]:
    """An ADDRESS Mailchimp will accept, or None and why it was left out."""
    if not isinstance(value, Mapping):
        return None, "ADDRESS is not an object"
    address = {k: str(v) for k, v in value.items() if v not in (None, "")}
    missing = [k for k in ADDRESS_REQUIRED if not address.get(k)]
    if missing:
        # Mailchimp rejects the whole member for an incomplete address; keep the rest.
        return None, f"ADDRESS left out (missing {', '.join(missing)})"
    return address, None


class MergeFieldRegistry:
    """Reads the audience's merge fields once per run; creates missing ones on demand."""

    def __init__(self, client: MailchimpClient, list_id: str, *, create_missing: bool,
                 types: Mapping[str, str] | None = None,
                 names: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.list_id = list_id
        self.create_missing = create_missing
        self.types = dict(types or {})
        self.names = dict(names or {})
        self._known: dict[str, str] | None = None
        self._lock = threading.Lock()

    def known(self) -> dict[str, str]:
        if self._known is None:
            self._known = {
                f["tag"]: f.get("type", "text")
                for f in self.client.paginate(
                    f"lists/{self.list_id}/merge-fields", "merge_fields",
                    {"fields": "merge_fields.tag,merge_fields.type,total_items"},
                )
            }
        return self._known

    def ensure(self, tags: set[str], inferred_types: Mapping[str, str]) -> dict[str, str]:
        """Make sure `tags` exist (when allowed). Returns tag -> reason for each unusable tag."""
        with self._lock:
            known = self.known()
            problems: dict[str, str] = {}
            for tag in sorted(tags - set(known)):
                if not TAG_PATTERN.match(tag):
                    problems[tag] = f"{tag!r} is not a valid merge tag"
                    continue
                if not self.create_missing:
                    problems[tag] = f"merge field {tag} does not exist (creation disabled)"
                    continue
                field_type = self.types.get(tag) or inferred_types.get(tag, "text")
                body = {"tag": tag, "name": self.names.get(tag, tag.title()), "type": field_type}
                try:
                    created = self.client.request(
                        "POST", f"lists/{self.list_id}/merge-fields", body=body,
                        expect={"tag": str},
                    )
                    known[tag] = str(created.get("type") or field_type)
                    LOGGER.info("Created merge field %s (%s)", tag, field_type)
                except ApiError as exc:
                    # A retry after a garbled answer finds the field that call created.
                    self._known = None
                    known = self.known()
                    if tag not in known:
                        problems[tag] = f"cannot create merge field {tag}: {exc.summary()}"
            return problems
