"""stdin for Singer messages: a RECORD's `record` stays JSON text (issue 9).

The mapper stores each input record as JSON and reads only a few link fields (`ingest.py`),
so parsing every record into Python objects (with singer-sdk's Decimal floats) and dumping it
again cost more than all the mapper's own work on the record. msgspec (singer-sdk's own
dependency) splits the envelope and keeps the record as its raw JSON text; anything else
(SCHEMA, STATE, a line msgspec refuses, such as NaN) takes singer-sdk's own path unchanged,
so a garbled line fails exactly as before.
"""

from __future__ import annotations

import msgspec
from singer_sdk.io_base import SingerReader


class _Envelope(msgspec.Struct):
    type: str
    stream: str | None = None
    record: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: none


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class RawRecordReader(SingerReader):
    """RECORD messages come with `record` as a `msgspec.Raw` (its JSON text)."""

    def deserialize_json(self, line: str) -> dict:
        try:
            envelope = _ENVELOPE.decode(line)
        except msgspec.MsgspecError:
            return super().deserialize_json(line)
        if envelope.type != "RECORD" or envelope.stream is None or not envelope.record:
            return super().deserialize_json(line)  # few: SCHEMA, STATE
        return {"type": "RECORD", "stream": envelope.stream, "record": envelope.record}
