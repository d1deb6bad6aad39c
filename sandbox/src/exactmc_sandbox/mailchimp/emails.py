"""E-mail addresses as Mailchimp sees them: subscriber hashes and the "looks fake" check."""

from __future__ import annotations

import hashlib
import re

from exactmc_sandbox.mailchimp.errors import ApiError, invalid

# Deliberately simple: one @, a non-empty local part, a dotted domain with a 2+ letter TLD.
_WELL_FORMED = re.compile(r"^[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"
                          r"\.[A-Za-z]{2,}$")

# Mailchimp's real "looks fake" heuristics are unpublished (unconfirmed). Our rule: an address is
# fake when BOTH its local part and the first label of its domain are placeholder words, e.g.
# test@test.com, fake@example.com, asdf@asdf.net. So alice@example.com is accepted: test data
# elsewhere in the project uses example.com for real-looking people.
PLACEHOLDER_WORDS = frozenset(
    {"test", "testing", "fake", "example", "asdf", "qwerty", "abc", "xxx", "none", "null",
     "noemail", "nomail", "foo", "bar", "sample", "dummy"}
)


def subscriber_hash(email: str) -> str:
    """MD5 of the lower-cased address: Mailchimp's member id."""
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def _ascii_form(email: str) -> str | None:
    """The address with its domain in ASCII (IDNA), or None when it cannot have one.

    Mailchimp's help: UTF-8 is allowed in the domain ("test@ñoñó1234.com") but blocked before
    the @ ("direcciónelectrónica@domain.com").
    """
    local, sep, domain = email.rpartition("@")
    if not sep or not local.isascii():
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")  # enough to tell a real domain
        except UnicodeError:
            return None
    return f"{local}@{domain}"


def looks_fake(email: str) -> bool:
    ascii_form = _ascii_form(email)
    if ascii_form is None or not _WELL_FORMED.match(ascii_form):
        return True
    local, domain = email.lower().rsplit("@", 1)
    return local in PLACEHOLDER_WORDS and domain.split(".")[0] in PLACEHOLDER_WORDS


def fake_email_error(email: str) -> ApiError:
    return invalid(f"{email} looks fake or invalid, please enter a real email address.")


def check_email(email: object) -> str:
    """The address, or an ApiError Mailchimp would answer for it."""
    if not isinstance(email, str) or not email.strip():
        raise invalid(
            "The resource submitted could not be validated. For field-specific details, "
            "see the 'errors' array.",
            [{"field": "email_address", "message": "This value should not be blank."}],
        )
    if looks_fake(email):
        raise fake_email_error(email)
    return email
