"""The OData v2 bits the simulator speaks: `$filter`, `$select`, `$skiptoken`, row rendering,
error bodies and the XML answer for clients that forget `Accept: application/json`."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from exactmc_sandbox.exact.dates import parse_local_datetime, to_odata_date

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le,
}


class ODataError(Exception):
    """An error answered with Exact's OData error body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"code": "", "message": {"lang": "", "value": message}}}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any

    def matches(self, row: dict[str, Any]) -> bool:
        actual = row.get(self.field)
        expected = self.value
        if isinstance(actual, str) and isinstance(expected, str):
            actual, expected = actual.lower(), expected.lower()
        if actual is None or expected is None:
            return self.op in {"eq", "ne"} and (actual is expected) == (self.op == "eq")
        try:
            return OPERATORS[self.op](actual, expected)
        except TypeError:
            raise ODataError(400, f"Operator '{self.op}' incompatible with {self.field}") from None


def parse_literal(text: str) -> Any:
    text = text.strip()
    if m := re.fullmatch(r"datetime'([^']+)'", text):
        try:
            return parse_local_datetime(m.group(1))
        except (ValueError, OverflowError):  # overflow: 0001-01-01 Amsterdam is in year 0 UTC
            raise ODataError(400, f"Invalid datetime literal: {text}") from None
    if m := re.fullmatch(r"guid'([0-9a-fA-F-]{36})'", text):
        return m.group(1).lower()
    if m := re.fullmatch(r"'((?:[^']|'')*)'", text):
        return m.group(1).replace("''", "'")
    if re.fullmatch(r"-?\d+L?", text):
        return int(text.rstrip("L"))
    if re.fullmatch(r"-?\d+\.\d+[mMdD]?", text):
        return float(text.rstrip("mMdD"))
    if text in {"true", "false"}:
        return text == "true"
    if text == "null":
        return None
    raise ODataError(400, f"Unrecognized literal in $filter: {text}")


class _AnyOf:
    """Terms joined by `or`: a row matches when one of them does."""

    def __init__(self, terms: list[Any]) -> None:
        self.terms = terms

    def matches(self, row: dict[str, Any]) -> bool:
        return any(term.matches(row) for term in self.terms)


class _AllOf(_AnyOf):
    """Terms joined by `and` (inside parentheses)."""

    def matches(self, row: dict[str, Any]) -> bool:
        return all(term.matches(row) for term in self.terms)


# Parentheses, quoted literals (with an optional datetime/guid prefix; '' is a quote inside),
# and any other run of characters: `and`/`or` inside a quoted address never splits it.
_TOKEN = re.compile(r"\s*(\(|\)|(?:datetime|guid)?'(?:[^']|'')*'|[^\s()]+)")


def _tokens(text: str) -> list[str]:
    tokens, at = [], 0
    text = text.strip()
    while at < len(text):
        m = _TOKEN.match(text, at)
        if not m:
            raise ODataError(400, f"Syntax error in $filter near '{text[at:].strip()}'")
        tokens.append(m.group(1))
        at = m.end()
    return tokens


class _FilterParser:
    """expr := conj ('or' conj)* ; conj := atom ('and' atom)* ; atom := '(' expr ')' | cond."""

    def __init__(self, tokens: list[str], allowed: set[str]) -> None:
        self.tokens, self.at, self.allowed = tokens, 0, allowed

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ODataError(400, "Syntax error in $filter: it ends too early")
        self.at += 1
        return token

    def expr(self) -> list[Any]:
        """The `or` alternatives, each a list of `and`ed terms."""
        alternatives = [self.conj()]
        while (self.peek() or "").lower() == "or":
            self.take()
            alternatives.append(self.conj())
        return alternatives

    def conj(self) -> list[Any]:
        terms = [self.atom()]
        while (self.peek() or "").lower() == "and":
            self.take()
            terms.append(self.atom())
        return terms

    def atom(self) -> Any:
        if self.peek() == "(":
            self.take()
            inner = self.expr()
            if self.take() != ")":
                raise ODataError(400, "Syntax error in $filter: unbalanced parentheses")
            return _combine(inner)
        name, op, literal = self.take(), self.take().lower(), self.take()
        if not re.fullmatch(r"\w+", name) or op not in OPERATORS:
            raise ODataError(400, f"Syntax error in $filter near '{name} {op} {literal}'")
        if name not in self.allowed:
            raise ODataError(400, f"$filter on '{name}' is not supported here")
        return Condition(name, op, parse_literal(literal))


def _combine(alternatives: list[list[Any]]) -> Any:
    terms = [conj[0] if len(conj) == 1 else _AllOf(conj) for conj in alternatives]
    return terms[0] if len(terms) == 1 else _AnyOf(terms)


def parse_filter(text: str | None, allowed: Iterable[str]) -> list[Any]:
    """The terms that must all match: Conditions, or groups joined by `or` (with parentheses).

    Fields outside `allowed` are refused. A filter of plain `and`s gives plain Conditions.
    """
    if not text or not text.strip():
        return []
    parser = _FilterParser(_tokens(text), set(allowed))
    alternatives = parser.expr()
    if parser.peek() is not None:
        raise ODataError(400, f"Syntax error in $filter near '{parser.peek()}'")
    return alternatives[0] if len(alternatives) == 1 else [_combine(alternatives)]


def parse_select(text: str | None, available: tuple[str, ...], required: bool,
                 default: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The `$select`ed properties (any of `available`); without one, `default` or all."""
    if not text or not text.strip():
        if required:
            raise ODataError(400, "$select is required. Example: $select=ID,Code")
        return default if default is not None else available
    fields = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in fields if f not in available]
    if unknown:
        raise ODataError(400, f"Property '{unknown[0]}' does not exist on this entity")
    return fields


def render(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in fields:
        value = row.get(name)
        out[name] = to_odata_date(value) if isinstance(value, datetime) else value
    return out


def next_link(host_url: str, path: str, args: dict[str, str], skiptoken: str) -> str:
    """The absolute `__next` URL: the same query with a new `$skiptoken`."""
    query = {k: v for k, v in args.items() if k != "$skiptoken"}
    query["$skiptoken"] = skiptoken
    encoded = urlencode(query, quote_via=quote, safe="$',()")
    return f"{host_url.rstrip('/')}{path}?{encoded}"


def xml_answer(title: str, rows: list[dict[str, Any]] | None, error: str | None = None) -> str:
    """A minimal Atom feed (what Exact answers without `Accept: application/json`)."""
    if error is not None:
        return ('<?xml version="1.0" encoding="utf-8"?><error xmlns="http://schemas.microsoft'
                f'.com/ado/2007/08/dataservices/metadata"><code/><message xml:lang="">'
                f"{escape(error)}</message></error>")
    entries = "".join(
        f"<entry><id>{escape(str(r.get('ID') or r.get('InvoiceID') or ''))}</id></entry>"
        for r in rows or []
    )
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{escape(title)}</title>{entries}</feed>")
