"""Typed settings whatever way they arrive.

Meltano's `kind: decimal` cannot be given as an environment variable (Meltano 4.4 casts it to
`Decimal` and then fails to write its JSON config file), so fractional settings are declared
`kind: string` in meltano.yml and arrive as text; `--config ENV` also yields text. The schema
says what they are, so the plugin converts them before validating.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def _types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    return set(declared or ())


def coerce_numbers(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Copy of `config` with numeric text turned into int/float where the schema wants a number.

    Text that is not a number is left alone, so the schema validation names the setting.
    """
    properties = schema.get("properties") or {}
    result = dict(config)
    for name, value in config.items():
        types = _types(properties.get(name) or {})
        if not isinstance(value, str) or not types & {"number", "integer"} or "string" in types:
            continue
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            continue
        if not number.is_finite():
            continue
        if number == number.to_integral_value() and ("integer" in types or "." not in value):
            result[name] = int(number)
        elif "number" in types:
            result[name] = float(number)
    return result
