"""Merge fields: which exist on the audience, creating missing ones before members use them."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from target_mailchimp.client import ApiError, MailchimpClient
from target_mailchimp.values import clean_text, to_datetime

LOGGER = logging.getLogger("target_mailchimp.merge_fields")
# Mailchimp merge tags: upper-case letters, digits and underscores, at most 10 characters.
TAG_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]{0,9}$")
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
TEXT_LIMIT = 255
BIRTHDAY = re.compile(r"(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])")


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


def clean_text_value(tag: str, value: Any) -> tuple[str, str | None]:
    """A text merge value without control characters, cut to Mailchimp's 255 characters
    (it refuses the whole member for a longer one); the note says when it was cut."""
    if type(value) is str and len(value) <= TEXT_LIMIT and value.isprintable():
        return value, None  # nearly every value: nothing to clean or cut (issue 9)
    text = clean_text(str(value))
    if len(text) > TEXT_LIMIT:
        return text[:TEXT_LIMIT], f"{tag} cut to {TEXT_LIMIT} characters"
    return text, None


def clean_address(value: Any, tag: str = "ADDRESS") -> tuple[dict[str, str] | None, str | None]:
    """An ADDRESS Mailchimp will accept, or None and why it was left out."""
    if not isinstance(value, Mapping):
        return None, f"{tag} left out (not an address object)"
    address: dict[str, str] = {}
    for key, part in value.items():
        if type(part) is str and len(part) <= TEXT_LIMIT and part.isprintable():
            if part:  # nearly every part: nothing to clean or cut (issue 9), as below
                address[key if type(key) is str else str(key)] = part
            continue
        if part in (None, ""):
            continue
        # The parts' own limits are undocumented: each is held to a text field's 255.
        address[str(key)] = clean_text(str(part))[:TEXT_LIMIT]
    missing = [k for k in ADDRESS_REQUIRED if not address.get(k)]
    if missing:
        # Mailchimp rejects the whole member for an incomplete address; keep the rest.
        return None, f"{tag} left out (missing {', '.join(missing)})"
    return address, None


def fit_to_type(tag: str, value: Any, field_type: str) -> tuple[Any, str | None]:
    """`value` as a field of `field_type` takes it, or None and why it is left out: Mailchimp
    refuses the whole member for one value that does not fit."""
    if field_type == "address":
        return clean_address(value, tag) if isinstance(value, Mapping) else (
            None, f"{tag} left out (not an address object)")
    if isinstance(value, Mapping):
        return None, f"{tag} left out (an address for a {field_type} field)"
    if field_type == "number":
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            return None, f"{tag} left out ({text[:40]!r} is not a number)"
        return text, None
    if field_type == "date":
        # The API takes ISO dates whatever the field's display format.
        day = to_datetime(value)
        if day is None:
            return None, f"{tag} left out ({str(value)[:40]!r} is not a date)"
        return day.date().isoformat(), None
    if field_type == "birthday":
        text = str(value).strip()
        if BIRTHDAY.fullmatch(text):
            return text, None
        day = to_datetime(text)
        if day is None:
            return None, f"{tag} left out ({text[:40]!r} is not a birthday, MM/DD)"
        return day.strftime("%m/%d"), None
    return value, None


# The field types whose values `fit_to_type` converts or checks; a value of any other type
# (text, phone, url, ...) is taken as it is unless it is an address object.
FITTED_TYPES = frozenset({"address", "number", "date", "birthday"})


def fit_all(fields: dict[str, Any], types: Mapping[str, str], notes: list[str]) -> None:
    """`fit_to_type` of every value of `fields` in place (a value that does not fit is left
    out and `notes` says why), skipping the calls that cannot change anything: a plain value
    of a text-like field (issue 9: 8 calls a member, nearly all of them that)."""
    for tag, value in list(fields.items()):
        field_type = types.get(tag, "text")
        if field_type not in FITTED_TYPES and not isinstance(value, Mapping):
            continue
        fitted, problem = fit_to_type(tag, value, field_type)
        if problem:
            del fields[tag]
            notes.append(problem)
        else:
            fields[tag] = fitted


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
