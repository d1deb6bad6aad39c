"""Deciding whether an e-mail address from Exact is usable for Mailchimp."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


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


@lru_cache(maxsize=16384)
def _checked(candidate: str) -> EmailCheck:
    # Cached: one address is held by several records and read at every recompute; the
    # validator's IDNA checks are the costly part of an account recompute.
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
