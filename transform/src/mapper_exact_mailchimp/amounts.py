"""Exact's numbers checked and made exact before they become Mailchimp money.

Sums run in `Decimal` so that "the lines add up to the invoice, to the cent" is exact
arithmetic, not float luck. A value that cannot be a real amount (missing, NaN, infinite,
absurdly large, fractions of a cent) is refused with a reason: the caller dead-letters the
record instead of sending a wrong order.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
# A JSON number is a double: beyond 2**53 cents (≈ 9e13) it no longer carries every cent.
LIMIT = Decimal(10) ** 13


# Exact repeats its numbers (quantities, catalog prices, common amounts): an accepted float's
# Decimal is remembered (issue 9: 1.2M conversions in a 100k first sync). Keyed by the float
# and the cents rule; 0.0 and -0.0 share a key and a result (both end as Decimal("0.0")). A
# refused value is never kept (NaN matches no key anyway). Bounded: cleared when full.
_KNOWN: dict[tuple[float, bool], Decimal] = {}
KNOWN_MAX = 20_000


class BadNumber(ValueError):
    """A value that cannot be trusted as an amount, price or quantity; str() is the reason."""


def exact_number(value: object, name: str, *, whole_cents: bool = False) -> Decimal:
    """`value` as a Decimal. Amounts (`whole_cents`) must be in cents, as Exact books them;
    quantities and unit prices may have more decimals. Negative zero becomes zero."""
    if value.__class__ is float:  # the usual case first (issue 9): no other check applies
        known = _KNOWN.get((value, whole_cents))  # type: ignore[index]
        if known is not None:
            return known
        # repr of a float is the shortest literal that reads back as it: the number Exact sent.
        number = Decimal(repr(value))
    else:
        if value is None or value == "":
            raise BadNumber(f"{name} is missing")
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise BadNumber(f"{name} {value!r} is not a number")
        try:
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise BadNumber(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise BadNumber(f"{name} {value!r} is not a number")
    if abs(number) >= LIMIT:
        raise BadNumber(f"{name} {value!r} is out of range (at most {LIMIT:.0e})")
    if whole_cents and number != number.quantize(CENT):
        raise BadNumber(f"{name} {value!r} has fractions of a cent")
    number += 0  # Decimal("-0.0") + 0 == Decimal("0.0"): no negative zero downstream
    if value.__class__ is float:
        if len(_KNOWN) >= KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[(value, whole_cents)] = number  # type: ignore[index]
    return number


def money(amount: Decimal) -> float:
    """An amount as Mailchimp gets it: a JSON number in cents, never -0.0."""
    return float(amount.quantize(CENT)) + 0.0
