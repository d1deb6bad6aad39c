"""Small conversions of incoming record values."""

from __future__ import annotations

import datetime
import re
import unicodedata
from typing import Any

import idna
import msgspec

# Deliberately loose: Mailchimp has the final say, this only catches what cannot be an address.
EMAIL_PATTERN = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def email_problem(value: Any) -> str:
    """Why `normalise_email` refused `value`, for the audit trail."""
    if value in (None, ""):
        return "missing email"
    local = str(value).strip().rpartition("@")[0]
    if local and not local.isascii():
        return "invalid email address: Mailchimp takes no UTF-8 characters before the @"
    return "invalid email address"


def to_datetime(value: Any) -> datetime.datetime | None:
    """singer-sdk may already have parsed date-times; naive values are taken as UTC."""
    if type(value) is str:  # nearly every call: text as the mapper wrote it, checked first
        text = value
    elif value is None:
        return None
    elif isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    elif isinstance(value, datetime.date):
        return datetime.datetime.combine(value, datetime.time(), tzinfo=datetime.timezone.utc)
    else:
        text = str(value)
    if not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def iso(value: Any) -> str | None:
    """ISO-8601 UTC with seconds, the form Mailchimp's *_foreign fields and filters take."""
    if type(value) is str and _is_utc_seconds(value):
        return value[:19] + "+00:00"  # already that form (what the mapper writes): as is
    parsed = to_datetime(value)
    if parsed is None:
        return None
    return parsed.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _is_utc_seconds(text: str) -> bool:
    """`YYYY-MM-DDTHH:MM:SS` and `Z` or `+00:00`, a real moment: `iso` would write the same
    digits (issue 9: two per order; converting each was a fifth of building an order)."""
    if not ((len(text) == 20 and text[19] == "Z") or (len(text) == 25 and text.endswith("+00:00"))):
        return False
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        return False  # e.g. an ISO week date, which fromisoformat takes too
    try:
        datetime.datetime.fromisoformat(text[:19])  # the digits make a valid date and time
    except ValueError:
        return False
    return True


def normalise_email(value: Any) -> str | None:
    """Trimmed, lower-cased, an internationalised domain in its IDNA (punycode) form.

    One spelling per address, so the subscriber hash (and the mapper's dedup) does not depend
    on how a source writes the domain; the ASCII form is also what every mail system takes.
    IDNA 2008 with UTS 46 mapping, as the mapper's email-validator does (the stdlib codec is
    IDNA 2003: it turns straße.de into strasse.de, another domain). UTF-8 before the @ is
    refused: Mailchimp blocks it (its help on international characters).
    """
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    if email.isascii():  # nearly every address: NFC, IDNA and the UTF-8 check change nothing
        return email if EMAIL_PATTERN.match(email) else None
    email = unicodedata.normalize("NFC", email)
    if not EMAIL_PATTERN.match(email):
        return None
    local, domain = email.rsplit("@", 1)
    if not local.isascii():
        return None
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True, std3_rules=False,
                                 transitional=False).decode("ascii")
        except idna.IDNAError:
            return None
    return f"{local}@{domain}"


# Whitespace controls become a space (a line break inside a name separates words); the rest
# of the C0/C1 controls, DEL and lone surrogates are dropped: Mailchimp shows them as junk
# or refuses the JSON, and they are never meant.
_BREAKS = re.compile(r"[\t\n\r\x0b\x0c]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROLS_ALL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str, *, keep_breaks: bool = False) -> str:
    """`value` without control characters; `keep_breaks` keeps tabs and line breaks (for
    multi-line fields such as a product description)."""
    if value.isprintable():
        # Nearly every text: nothing to clean (one C check instead of 3 regexes). Exact: every
        # character the regexes touch (Cc controls, Cs surrogates) is one isprintable refuses.
        return value
    if keep_breaks:
        return _CONTROLS_ALL.sub("", value)
    return _CONTROLS.sub("", _BREAKS.sub(" ", value.strip("\t\n\r\x0b\x0c")))


# Body keys whose value is an identifier (also in the request path): never rewritten.
ID_KEYS = frozenset({"id", "product_id", "product_variant_id", "email_address"})
MULTILINE_KEYS = frozenset({"description"})


def clean_strings(value: Any, key: str | None = None) -> Any:
    """Every text in a request body cleaned (see `clean_text`), identifiers excepted."""
    if isinstance(value, str):
        if key in ID_KEYS or value.isprintable():
            return value
        return clean_text(value, keep_breaks=key in MULTILINE_KEYS)
    if isinstance(value, dict):
        return _clean_dict(value)
    if isinstance(value, list):
        return [clean_strings(item, key) for item in value]
    return value


# A body's JSON (msgspec) holds one of these bytes wherever one of its texts may need
# cleaning: an escape (the controls \x00-\x1f are always escaped; so are " and \\, which
# then merely take the general path), DEL, or a C1 control (UTF-8 \xc2\x80-\xc2\x9f;
# \xc2 is never a continuation byte). Lone surrogates cannot be encoded: an error, the
# general path.
_BODY_CHECK = msgspec.json.Encoder()
_C1_CONTROL = re.compile(rb"\xc2[\x80-\x9f]")


def clean_body(body: Any) -> Any:
    """`clean_strings(body)`; a body with nothing to clean (nearly every one) as it is,
    found by one C encoding and search instead of a walk and copy of every dict, list and
    text in Python (issue 9: e-commerce bodies' cleaning was a tenth of the target's CPU)."""
    try:
        encoded = _BODY_CHECK.encode(body)
    except (TypeError, ValueError, OverflowError):  # a type msgspec lacks, a surrogate
        return clean_strings(body)
    # Byte searches (memchr) first: a regex stepping through every byte cost 4x the encoding.
    if (b"\\" in encoded or b"\x7f" in encoded
            or (b"\xc2" in encoded and _C1_CONTROL.search(encoded))):
        return clean_strings(body)
    return body


def _clean_dict(body: dict[str, Any]) -> dict[str, Any]:
    """`clean_strings` of a dict, its plain values handled inline (one call per dict, not
    per value: a body has many)."""
    out = {}
    for key, value in body.items():
        if isinstance(value, str):
            if not (key in ID_KEYS or value.isprintable()):
                value = clean_text(value, keep_breaks=key in MULTILINE_KEYS)
        elif isinstance(value, dict):
            value = _clean_dict(value)
        elif isinstance(value, list):
            value = [clean_strings(item, key) for item in value]
        out[key] = value
    return out


def mailchimp_email(member: dict[str, Any]) -> str:
    """A member's address from a Mailchimp answer, spelt as we spell it (IDNA domain): one
    added in Mailchimp with its UTF-8 domain must still be recognised (archived, edited)."""
    raw = str(member.get("email_address", ""))
    return normalise_email(raw) or raw.lower()


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
