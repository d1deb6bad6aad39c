"""An append-only anonymous temporary file: bulk bytes the sandbox must keep but rarely reads
(`/batches`' queued operations and result archives) go to disk instead of the heap (issue 9:
352 MB at 100k accounts once the target sent its bulk work as batches).

The file has no name on disk (unlinked at creation, mode 0600): it is gone with the process,
however it ends, and one file serves every batch (a file per batch would run a long-lived
sandbox out of descriptors). Reads use `os.pread`, so they never move the writer's position.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator

CHUNK = 1 << 16


def _write_all(descriptor: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written


class Spool:
    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - open for the sandbox's life
        self._lock = threading.Lock()
        self._end = 0

    def append(self, data: bytes) -> tuple[int, int]:
        """Stores `data`; returns where it is (offset, length)."""
        with self._lock:
            offset = self._end
            _write_all(self._file.fileno(), data, offset)
            self._end += len(data)
        return offset, len(data)

    def writer(self) -> SpoolWriter:
        """A file-like sink for one long write (a tar.gz); `extent()` when done. Holds the
        spool until `close()` (nothing else is appended in between, so the bytes stay
        contiguous): give long writes a spool of their own."""
        self._lock.acquire()
        return SpoolWriter(self)

    def chunks(self, offset: int, length: int) -> Iterator[bytes]:
        end = offset + length
        while offset < end:
            data = os.pread(self._file.fileno(), min(CHUNK, end - offset), offset)
            if not data:
                raise OSError("spool truncated")
            offset += len(data)
            yield data

    def lines(self, offset: int, length: int) -> Iterator[bytes]:
        """The newline-separated records stored at (offset, length)."""
        rest = b""
        for chunk in self.chunks(offset, length):
            *complete, rest = (rest + chunk).split(b"\n")
            yield from complete
        if rest:
            yield rest

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()


class SpoolWriter:
    """What `tarfile`/`gzip` need of a file opened for writing (they never seek it)."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._start = spool._end
        self.closed = False

    def write(self, data: bytes) -> int:
        spool = self._spool
        _write_all(spool._file.fileno(), data, spool._end)
        spool._end += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self._spool._end - self._start

    def extent(self) -> tuple[int, int]:
        return self._start, self._spool._end - self._start

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._spool._lock.release()
