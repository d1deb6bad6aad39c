"""`/3.0/batches`: queued operations run one batch at a time by a background worker.

A batch stays `pending` for `batch_start_delay` seconds, is `started` while its operations run
(each by calling its route handler with the submitter's credentials: batch_dispatch.py),
`finalizing` while the results archive is built, then `finished`.
Expiry of old batches is not simulated. Queued operations and result archives are kept in
spools (spool.py), not on the heap (issue 9).
"""

from __future__ import annotations

import io
import queue
import secrets
import tarfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, request

from exactmc_sandbox.mailchimp import fastjson
from exactmc_sandbox.mailchimp.batch_dispatch import OperationDispatcher
from exactmc_sandbox.mailchimp.context import MailchimpContext, ctx
from exactmc_sandbox.mailchimp.errors import not_found, schema_invalid
from exactmc_sandbox.mailchimp.handler_tools import no_content, object_body, page, respond
from exactmc_sandbox.mailchimp.spool import Spool

bp = Blueprint("mailchimp_batches", __name__)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass
class Batch:
    id: str
    operations: tuple[int, int]  # where its operations are in the runner's spool, a JSON line each
    authorization: str
    results_url: str
    submitted_at: str
    not_before: float  # monotonic time the worker may start it
    status: str = "pending"
    total_operations: int = 0
    finished_operations: int = 0
    errored_operations: int = 0
    completed_at: str = ""
    archive: tuple[int, int] | None = None  # where its .tar.gz is in the archive spool
    # Monotonic run window, for tests proving batches never overlap (not in the API).
    ran_from: float | None = None
    ran_until: float | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "total_operations": self.total_operations,
            "finished_operations": self.finished_operations,
            "errored_operations": self.errored_operations,
            "submitted_at": self.submitted_at, "completed_at": self.completed_at,
            "response_body_url": self.results_url if self.status == "finished" else "",
            "_links": [],
        }


def _validate_operations(body: dict[str, Any]) -> list[dict[str, Any]]:
    operations = body.get("operations")
    if not isinstance(operations, list):
        raise schema_invalid([{"field": "operations", "message": "Schema describes array"}])
    for index, op in enumerate(operations):
        where = f"operations.{index}"
        if not isinstance(op, dict):
            raise schema_invalid([{"field": where, "message": "Schema describes object"}])
        if str(op.get("method", "")).upper() not in METHODS:
            raise schema_invalid([{"field": f"{where}.method",
                                   "message": f"method must be one of {', '.join(METHODS)}"}])
        if not isinstance(op.get("path"), str) or not op["path"]:
            raise schema_invalid([{"field": f"{where}.path", "message": "path is required"}])
        if "body" in op and op["body"] is not None and not isinstance(op["body"], str):
            raise schema_invalid([{"field": f"{where}.body", "message":
                                   "Schema describes string (a JSON document), "
                                   f"{type(op['body']).__name__} found instead"}])
        if "params" in op and op["params"] is not None and not isinstance(op["params"], dict):
            raise schema_invalid([{"field": f"{where}.params",
                                   "message": "Schema describes object"}])
    return operations


class BatchRunner:
    """Holds every batch and runs them, one at a time, on a worker thread."""

    def __init__(self, app: Flask, context: MailchimpContext) -> None:
        self.app = app
        self.context = context
        self.batches: dict[str, Batch] = {}
        self.lock = threading.Lock()
        self._queue: queue.Queue[Batch] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Two spools: the worker holds the archive spool while it writes a batch's archive,
        # submissions append to the other meanwhile.
        self.operations = Spool()
        self.archives = Spool()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name="mailchimp-batches")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            if self._thread.is_alive():  # still writing: the spools go with the process
                return
        self.operations.close()
        self.archives.close()

    def submit(self, operations: list[dict[str, Any]], authorization: str, host_url: str) -> Batch:
        batch_id = secrets.token_hex(5)
        lines = b"".join(_encode_operation(op) + b"\n" for op in operations)
        batch = Batch(
            id=batch_id, operations=self.operations.append(lines),
            total_operations=len(operations),
            authorization=authorization,
            results_url=f"{host_url.rstrip('/')}/_sandbox/batch-results/{batch_id}.tar.gz",
            submitted_at=self.context.clock.iso(),
            not_before=time.monotonic() + self.context.settings.batch_start_delay,
        )
        with self.lock:
            self.batches[batch_id] = batch
        self._queue.put(batch)
        return batch

    # --- the worker --------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if batch.status == "canceled":
                continue
            while time.monotonic() < batch.not_before and not self._stop.is_set():
                time.sleep(0.01)
            self._run(batch)

    def _run(self, batch: Batch) -> None:
        batch.ran_from = time.monotonic()
        batch.status = "started"
        archive = ResultsArchive(batch.id, self.context.settings.batch_results_per_file,
                                 self.archives)
        dispatcher = OperationDispatcher(
            self.app, batch.authorization,
            self.context.auth.identify(batch.authorization) is not None)
        try:
            with self.app.app_context():
                self._run_operations(batch, dispatcher, archive)
            if self._stop.is_set():
                return
            batch.status = "finalizing"
            extent = archive.close()
        finally:
            archive.release()
        batch.archive = extent
        batch.completed_at = self.context.clock.iso()
        batch.ran_until = time.monotonic()
        batch.status = "finished"

    def _run_operations(self, batch: Batch, dispatcher: OperationDispatcher,
                        archive: ResultsArchive) -> None:
        for line in self.operations.lines(*batch.operations):
            if self._stop.is_set():
                return
            result = self._execute(dispatcher, fastjson.decode(line))
            archive.add(result)
            if result["status_code"] >= 400:
                batch.errored_operations += 1
            batch.finished_operations += 1
            if self.context.settings.batch_operation_delay:
                time.sleep(self.context.settings.batch_operation_delay)

    def _execute(self, dispatcher: OperationDispatcher, op: dict[str, Any]) -> dict[str, Any]:
        status, response = dispatcher.execute(op)
        return {"status_code": status, "operation_id": op.get("operation_id"),
                "response": response}


class ResultsArchive:
    """The results .tar.gz, written as operations finish: JSON files of `per_file` results
    each ({status_code, operation_id, response}), so at most one file's results are held."""

    def __init__(self, batch_id: str, per_file: int, spool: Spool) -> None:
        self.batch_id = batch_id
        self.per_file = max(1, per_file)
        self._sink = spool.writer()  # written straight to the spool, never whole in memory
        # Open for the whole batch (closed by `close`), hence no `with`. Fastest gzip level:
        # level 9 (tarfile's default) cost 10 µs an operation, a sixth of the sandbox's CPU
        # under a first sync, for 15 % smaller results (issue 9).
        self._tar = tarfile.open(fileobj=self._sink, mode="w:gz",  # type: ignore[call-overload]  # noqa: SIM115
                                 compresslevel=1)
        self._pending: list[dict[str, Any]] = []
        self._files = 0

    def add(self, result: dict[str, Any]) -> None:
        self._pending.append(result)
        if len(self._pending) >= self.per_file:
            self._flush()

    def close(self) -> tuple[int, int]:
        """Where the finished archive is in the spool."""
        if self._pending or not self._files:  # an empty batch still has one (empty) file
            self._flush()
        self._tar.close()
        return self._sink.extent()

    def release(self) -> None:
        """Lets others write to the spool again (after `close`, or after giving up)."""
        self._sink.close()

    def _flush(self) -> None:
        data = fastjson.encode(self._pending)
        info = tarfile.TarInfo(f"{self.batch_id}/{secrets.token_hex(5)}.json")
        info.size = len(data)
        info.mtime = int(time.time())
        self._tar.addfile(info, io.BytesIO(data))
        self._pending = []
        self._files += 1


# Each operation as compact JSON on one line (JSON text escapes every newline; a lone
# surrogate a client sent survives as an escape: fastjson.py).
_encode_operation = fastjson.encode


def _runner() -> BatchRunner:
    return ctx().batches


def _batch_or_404(batch_id: str) -> Batch:
    with _runner().lock:
        batch = _runner().batches.get(batch_id)
    if batch is None:
        raise not_found()
    return batch


@bp.post("/3.0/batches")
def submit_batch() -> Response:
    operations = _validate_operations(object_body())
    batch = _runner().submit(operations, request.headers.get("Authorization", ""),
                             request.host_url)
    return respond(batch.to_api())


@bp.get("/3.0/batches")
def list_batches() -> Response:
    with _runner().lock:
        batches = list(_runner().batches.values())
    return respond({"batches": [b.to_api() for b in page(batches)],
                    "total_items": len(batches), "_links": []})


@bp.get("/3.0/batches/<batch_id>")
def get_batch(batch_id: str) -> Response:
    return respond(_batch_or_404(batch_id).to_api())


@bp.delete("/3.0/batches/<batch_id>")
def delete_batch(batch_id: str) -> Response:
    """Stops a batch that has not started and forgets it (as the real API does)."""
    batch = _batch_or_404(batch_id)
    if batch.status == "pending":
        batch.status = "canceled"
    with _runner().lock:
        _runner().batches.pop(batch_id, None)
    return no_content()


@bp.get("/_sandbox/batch-results/<batch_id>.tar.gz")
def batch_results(batch_id: str) -> Response:
    batch = _batch_or_404(batch_id)
    if batch.archive is None:
        raise not_found("The batch has not finished yet.")
    offset, length = batch.archive
    response = Response(_runner().archives.chunks(offset, length),
                        mimetype="application/x-gzip")
    response.content_length = length
    return response
