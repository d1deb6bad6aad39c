"""stdout for Singer messages, flushed per STATE instead of per record (issue 9).

The SDK's writer flushes after every message: one write system call per record. Records may
sit in the buffer until the next STATE (or until it fills): the target acts on a STATE, and
every record a STATE covers is flushed before it, so nothing the target confirms is missing.

A RECORD is written with one call of the standard library's C encoder, byte for byte what
singer-sdk's simplejson call writes for the plain JSON values the mapper makes (compact
separators, ASCII escapes); anything else (a Decimal, NaN) goes the SDK's way.
"""

from __future__ import annotations

import json
import sys
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from singer_sdk.io_base import SingerWriter
from singer_sdk.singerlib import Message, RecordMessage

_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _not_json(value: object) -> Any:
    msg = f"Object of type {value.__class__.__name__} is not JSON serializable"
    raise TypeError(msg)


# The C encoder `_ENCODE` builds on every call, built once (issue 9: ~1.4 us of ~4.7 per
# record). Same text: same C function, arguments and float handling; no circular-reference
# check (an output is a tree of fresh dicts and lists). Absent on other Pythons: `_ENCODE`.
_C_ENCODER = c_make_encoder(None, _not_json, encode_basestring_ascii, None, ":", ",",
                            False, False, False) if c_make_encoder is not None else None


def encode_json(value: Any) -> str:
    """`value` as compact ASCII JSON (what singer-sdk writes); TypeError or ValueError for
    anything but plain JSON values (NaN included)."""
    if _C_ENCODER is None:
        return _ENCODE(value)  # type: ignore[no-any-return]
    return "".join(_C_ENCODER(value, 0))


# '{"type":"RECORD","stream":<stream>,"record":' by stream (a handful of streams).
_PREFIXES: dict[str, str] = {}


def _prefix(stream: str) -> str:
    found = _PREFIXES.get(stream)
    if found is None:
        found = _PREFIXES[stream] = f'{{"type":"RECORD","stream":{_ENCODE(stream)},"record":'
    return found


def render_record(stream: str, record: dict[str, Any]) -> str | None:
    """The RECORD line (no newline) as singer-sdk writes it; None when the record holds
    something other than plain JSON values (the SDK's encoder must write it)."""
    try:
        return _prefix(stream) + encode_json(record) + "}"
    except (TypeError, ValueError):
        return None


def record_json(stream: str, line: str) -> str:
    """The record's JSON text within a line `render_record` made."""
    return line[len(_prefix(stream)):-1]


class RenderedRecord:
    """A RECORD message already rendered as its line (issue 9: the flush renders an output
    once, as it spools it, instead of keeping the record to encode it later)."""

    __slots__ = ("line", "stream")

    def __init__(self, stream: str, line: str) -> None:
        self.stream, self.line = stream, line

    def to_dict(self) -> dict[str, Any]:
        """What another Singer writer serialises (tests collect messages that way)."""
        return json.loads(self.line)  # type: ignore[no-any-return]


class StateFlushingWriter(SingerWriter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Python's -u (PYTHONUNBUFFERED, often set for services and CI) makes every write a
        # system call (issue 9: one per record). Records wait for the next STATE anyway (see
        # above), so stdout buffers them whatever the environment; STATEs, the end of input
        # and the interpreter's exit still flush it.
        if getattr(sys.stdout, "write_through", False) and hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(write_through=False)

    def format_message(self, message: Message | RenderedRecord) -> str:
        if type(message) is RenderedRecord:
            return message.line
        if type(message) is RecordMessage and message.version is None \
                and message.time_extracted is None:
            line = render_record(message.stream, message.record)
            if line is not None:
                return line
        return super().format_message(message)  # type: ignore[arg-type]

    def write_message(self, message: Message | RenderedRecord) -> None:
        if type(message) is RenderedRecord:
            sys.stdout.write(message.line + "\n")
            return
        sys.stdout.write(self.format_message(message) + "\n")
        if not isinstance(message, RecordMessage):
            sys.stdout.flush()
