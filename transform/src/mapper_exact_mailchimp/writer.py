"""stdout for Singer messages, flushed per STATE instead of per record (issue 9).

The SDK's writer flushes after every message: one write system call per record. Records may
sit in the buffer until the next STATE (or until it fills): the target acts on a STATE, and
every record a STATE covers is flushed before it, so nothing the target confirms is missing.
"""

from __future__ import annotations

import sys

from singer_sdk.io_base import SingerWriter
from singer_sdk.singerlib import Message, RecordMessage


class StateFlushingWriter(SingerWriter):
    def write_message(self, message: Message) -> None:
        sys.stdout.write(self.format_message(message) + "\n")
        if not isinstance(message, RecordMessage):
            sys.stdout.flush()
