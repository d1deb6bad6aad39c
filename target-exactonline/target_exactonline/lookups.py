"""Finding Exact rows by value: several values per call, `or`ed in one `$filter`.

One call per batch per division (not one per address): URLs stay under Exact's ~2,000
characters, so a batch holds as many values as fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from target_exactonline.client import ExactClient, query_string

MAX_URL = 1900  # Exact (IIS) refuses URLs over ~2,000 characters; keep a margin


def literal(value: str) -> str:
    """An OData string literal: quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def batched_filters(base_url: str, fields: tuple[str, ...], values: Iterable[str],
                    select: str) -> Iterator[tuple[list[str], str]]:
    """(values, $filter) pairs: each filter matches any of `fields` equal to any of its values."""
    batch: list[str] = []
    clauses: list[str] = []
    for value in values:
        mine = [f"{field} eq {literal(value)}" for field in fields]
        candidate = " or ".join([*clauses, *mine])
        url = f"{base_url}?{query_string({'$filter': candidate, '$select': select})}"
        if batch and len(url) > MAX_URL:
            yield batch, " or ".join(clauses)
            batch, clauses = [], []
        batch.append(value)
        clauses.extend(mine)
    if batch:
        yield batch, " or ".join(clauses)


def find(client: ExactClient, division: int, path: str, fields: tuple[str, ...],
         values: Iterable[str], select: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of `division`'s `path` whose `fields` equal one of `values` (Exact compares
    without regard to case, as does the caller when it sorts the rows out)."""
    rows: list[dict[str, Any]] = []
    base = f"{client.api}/{division}/{path}"
    selected = ",".join(select)
    for _, where in batched_filters(base, fields, values, selected):
        rows.extend(client.rows(f"{division}/{path}", {"$filter": where, "$select": selected}))
    return rows
