"""Rows of the shared invoice feed set aside for the stream that syncs second.

`sync/SalesInvoice/SalesInvoices` serves headers (LineNumber 0) and lines in one feed. Reading
it twice would double the calls, so the first of sales_invoices / sales_invoice_lines to read a
division routes the other's rows here (a temporary JSON-lines file per stream and division, so
memory stays flat) and the other reads them back.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from singer_sdk.singerlib.json import deserialize_json, serialize_json


class LineSpool:
    """One temporary file of raw feed rows per (stream, division), kept for one run."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._files: dict[tuple[str, int], Path] = {}

    def writer(self, stream: str, division: int) -> SpoolWriter:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="tap-exactonline-feed-"))
        path = self._files[(stream, division)] = self._dir / f"{stream}-{division}.jsonl"
        return SpoolWriter(path)

    def has(self, stream: str, division: int) -> bool:
        return (stream, division) in self._files

    def read(self, stream: str, division: int) -> Iterator[dict[str, Any]]:
        """The rows set aside, in feed order; then the file is gone."""
        path = self._files.pop((stream, division))
        try:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    yield deserialize_json(line)
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._files.clear()


class SpoolWriter:
    def __init__(self, path: Path) -> None:
        self._handle = path.open("w", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        # The SDK's own Singer JSON: amounts (Decimal) are written and read back digit for digit.
        self._handle.write(serialize_json(row) + "\n")

    def close(self) -> None:
        self._handle.close()
