"""Deciding whether an e-mail address from Exact is usable for Mailchimp."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

# A plain ASCII address (issue 9): dot-atom local part of common characters, hostname labels
# without a double dash (so no Punycode), a letters-only TLD of 2+. Every such address within
# the length limits is one email-validator accepts as it is (tests/test_emails.py checks it
# against the validator); anything else is validated in full.
_PLAIN = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+([a-z]{2,})")
_SPECIAL_TLDS = frozenset(SPECIAL_USE_DOMAIN_NAMES)


@dataclass(frozen=True)
class EmailCheck:
    """Either a normalised address or the reason there is none."""

    email: str | None
    problem: str | None = None


def check_email(raw: object) -> EmailCheck:
    """Lower-case, trim and syntax-check one address (no DNS: runs must not depend on it).

    An internationalised domain comes out in its IDNA (punycode) form: the one Mailchimp
    accepts, and one spelling per address, so dedup and the subscriber hash do not depend on
    how Exact spells it. IDNA 2008 with UTS 46 mapping, exactly as target-mailchimp encodes.
    """
    if raw is None or not str(raw).strip():
        return EmailCheck(None, "empty")
    return _checked(str(raw).strip().lower())


def plainly_valid(candidate: str) -> bool:
    """Valid without asking email-validator (whose IDNA checks cost ~50 µs an address)."""
    plain = _PLAIN.fullmatch(candidate)
    if plain is None or plain[1] in _SPECIAL_TLDS or len(candidate) > 254:
        return False
    local, domain = candidate.split("@")
    return len(local) <= 64 and all(len(label) <= 63 for label in domain.split("."))


@lru_cache(maxsize=16384)
def _checked(candidate: str) -> EmailCheck:
    # Cached: one address is held by several records and read at every recompute; the
    # validator's IDNA checks are the costly part of an account recompute.
    if plainly_valid(candidate):
        return EmailCheck(candidate)
    try:
        # Mailchimp blocks UTF-8 before the @ (its help page on international characters).
        valid = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        return EmailCheck(None, f"invalid email {candidate!r}: {error}")
    if candidate.isascii():
        return EmailCheck(candidate)
    return EmailCheck(f"{valid.local_part}@{valid.ascii_domain}")


def first_usable(*raws: object) -> EmailCheck:
    """The first usable address among fallbacks; else all the problems, for the report."""
    problems = []
    for raw in raws:
        check = check_email(raw)
        if check.email:
            return check
        problems.append(check.problem or "empty")
    return EmailCheck(None, "; ".join(dict.fromkeys(problems)))
