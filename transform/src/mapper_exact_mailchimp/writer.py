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

from singer_sdk.io_base import SingerWriter
from singer_sdk.singerlib import Message, RecordMessage

_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class StateFlushingWriter(SingerWriter):
    def format_message(self, message: Message) -> str:
        if type(message) is RecordMessage and message.version is None \
                and message.time_extracted is None:
            try:
                return (f'{{"type":"RECORD","stream":{_ENCODE(message.stream)},'
                        f'"record":{_ENCODE(message.record)}}}')
            except (TypeError, ValueError):
                pass  # not plain JSON values: the SDK's encoder knows them
        return super().format_message(message)

    def write_message(self, message: Message) -> None:
        sys.stdout.write(self.format_message(message) + "\n")
        if not isinstance(message, RecordMessage):
            sys.stdout.flush()
