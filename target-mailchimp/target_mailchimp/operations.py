"""Single API writes, sent one by one (in parallel) or, for large volumes, through `/batches`."""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from target_mailchimp.answer_fields import Tree, pick, selection, tree
from target_mailchimp.audit import FAILED, OK, AuditEntry
from target_mailchimp.client import ApiError, MailchimpClient, OutageError, dumpb


@dataclass
class Write:
    """One idempotent API call on behalf of one record."""

    stream: str
    record_key: str
    operation: str
    method: str
    path: str
    body: Any = None
    params: dict[str, str] | None = None
    # 404 means the goal is already reached (e.g. deleting something already gone).
    ok_if_missing: bool = False
    note: str | None = None
    # Keys (and types) a 2xx answer must have, else it is unreadable and sent again.
    expect: dict[str, Any] | None = None
    # What the target reads of a 2xx answer (Mailchimp's `fields`: comma-separated, dotted):
    # asked for, and all that is kept of the answer (answer_fields.py; issue 9: memory).
    # None: the whole answer. The `expect` keys are always part of it.
    fields: str | None = None

    def request_params(self) -> dict[str, str] | None:
        wanted = self._selection()
        return {**(self.params or {}), "fields": wanted} if wanted else self.params

    def answer_tree(self) -> Tree | None:
        return tree(self._selection())

    def _selection(self) -> str | None:
        return selection(self.fields, tuple(self.expect or ()))


@dataclass
class WriteResult:
    write: Write
    ok: bool
    response: Any = None
    error: str | None = None
    status: int | None = None

    def audit_entry(self) -> AuditEntry:
        w = self.write
        if self.ok:
            return AuditEntry(w.stream, w.record_key, w.operation, OK, reason=w.note,
                              response=short_answer(self.status, self.response))
        return AuditEntry(w.stream, w.record_key, w.operation, FAILED, reason=self.error,
                          response=self.error, method=w.method, path=w.path, payload=w.body)


def short_answer(status: int | None, body: Any) -> str:
    """What Mailchimp said, in a few words (ids and statuses, never whole documents)."""
    if not isinstance(body, dict):
        return f"{status or 'ok'}"
    picked = {k: body[k] for k in ("id", "status", "financial_status", "last_changed")
              if k in body and not isinstance(body[k], dict | list)}
    return f"{status or 'ok'} {''.join(_SHORT(picked, 0))}" if picked else f"{status or 'ok'}"


def _unencodable(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# json.dumps' own C encoder, made once (json.dumps makes one per call: issue 9, one call per
# write); the same text, as nothing picked is a container (no cycle to check for).
_SHORT = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _unencodable, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False,
    True) if json.encoder.c_make_encoder else (lambda value, _level: [json.dumps(value)])


# First wait before checking a /batches job, and its growth per check.
FIRST_POLL = 0.25
POLL_GROWTH = 1.5
# Bulk calls (batch subscribe, segment updates: up to 500 members each) go as one /batches
# job from this many on: a job costs its POST and a few status polls, so it is cheaper than
# four or more direct calls (issue 9: calls per 1,000 outputs).
BULK_BATCH_FROM = 4
# Single writes (PUTs) of a drain go as one job from this many on (`batch_operations_threshold`).
# It was 20: an incremental's 18 member and 8 customer PUTs went one by one (issue 9: 10
# changes should cost about 3 + 10 calls). A small job is done by its first poll in the
# sandbox; how many polls real Mailchimp's queue costs a small job is unconfirmed.
SINGLE_BATCH_FROM = 8


class WriteExecutor:
    """Sends writes; few go directly, many go as one `/batches` job (one call plus polling)."""

    def __init__(
        self,
        client: MailchimpClient,
        *,
        batch_threshold: int,
        poll_interval: float = 30.0,
        poll_timeout: float = 3600.0,
    ) -> None:
        self.client = client
        self.batch_threshold = batch_threshold
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout

    def execute(self, writes: list[Write], *, batch_from: int | None = None) -> list[WriteResult]:
        """`batch_from` lowers the threshold for these writes (bulk calls); a threshold of 0
        (never /batches) stays 0."""
        if not writes:
            return []
        threshold = self.batch_threshold
        if batch_from is not None and threshold > 0:
            threshold = min(threshold, batch_from)
        if threshold > 0 and len(writes) >= threshold:
            return self._via_batches(writes)
        return self.client.map_parallel(self._direct, writes)

    def _direct(self, write: Write) -> WriteResult:
        try:
            body = self.client.request(write.method, write.path, params=write.request_params(),
                                       body=write.body, expect=write.expect)
        except ApiError as exc:
            if exc.status == 404 and write.ok_if_missing:
                return WriteResult(write, True, None, status=404)
            return WriteResult(write, False, error=exc.summary(), status=exc.status)
        return WriteResult(write, True, pick(body, write.answer_tree()),
                           status=200 if body is not None else 204)

    # --- /batches ------------------------------------------------------------------------

    def _via_batches(self, writes: list[Write]) -> list[WriteResult]:
        by_id = {f"op{index}": write for index, write in enumerate(writes)}
        # A garbled answer is retried: the job it may have created runs too, harmlessly, as
        # every operation is an idempotent write.
        batch = self.client.request("POST", "batches", body=batch_payload(by_id),
                                    expect={"id": str})
        finished = self._wait(batch["id"])
        outcomes = self._results(finished, {op_id: w.answer_tree() for op_id, w in by_id.items()})
        results: dict[str, WriteResult] = {}
        retry: dict[str, Write] = {}
        for op_id, write in by_id.items():
            status, body = outcomes.get(op_id, (None, None))
            if (status is None or status == 429 or status >= 500
                    or (status < 300 and status != 204 and not _readable(body, write.expect))):
                # Not applied, or we cannot tell: transient, like a direct call's 429/5xx
                # or garbled answer. Sent again directly, with retries; an outage there
                # raises and holds STATE back.
                retry[op_id] = write
            elif status < 300 or (status == 404 and write.ok_if_missing):
                results[op_id] = WriteResult(write, True, body, status=status)
            else:
                if isinstance(body, Unreadable):
                    body = {"detail": str(body)}
                results[op_id] = WriteResult(write, False, status=status,
                                             error=ApiError.from_body(status, body).summary())
        resent = self.client.map_parallel(self._direct, list(retry.values()))
        results.update(zip(retry, resent, strict=True))
        return [results[op_id] for op_id in by_id]

    def _wait(self, batch_id: str) -> dict[str, Any]:
        """Poll until the job finishes: soon at first (a small job is done in a second or
        two; a fixed interval slept most of a run away), then when the job's pace between
        the last two polls (`finished_operations`) says it should be done, else less and
        less often; never more than `poll_interval` apart. A job costs a few polls."""
        deadline = time.monotonic() + self.poll_timeout
        longest = max(self.poll_interval, 0.01)
        wait = min(FIRST_POLL, longest)
        seen: tuple[int, float] | None = None  # finished_operations, when
        while True:
            time.sleep(wait)
            status = self.client.request("GET", f"batches/{batch_id}",
                                         expect={"status": str})
            if status["status"] == "finished":
                return status
            polled = time.monotonic()
            if polled > deadline:
                raise OutageError(f"Batch {batch_id} did not finish in {self.poll_timeout}s")
            done, total = status.get("finished_operations"), status.get("total_operations")
            if not isinstance(done, int) or not isinstance(total, int):
                wait *= POLL_GROWTH
            elif seen is not None and done > seen[0]:
                # A little after the job should end at its pace, rather than just before.
                wait = (total - done) * (polled - seen[1]) / (done - seen[0]) * 1.1
                seen = (done, polled)
            else:
                wait *= POLL_GROWTH
                seen = (done, polled)
            wait = min(max(wait, FIRST_POLL), longest)

    def _results(self, batch: dict[str, Any], trees: dict[str, Tree | None]
                 ) -> dict[str, tuple[int, Any]]:
        url = batch.get("response_body_url")
        if not url:
            # No archive named: every operation counts as unknown and is sent again directly.
            return {}
        return self.client.download(url, lambda archive: _read_results(archive, trees))


def batch_payload(by_id: dict[str, Write]) -> bytes:
    """The `/batches` request body, encoded one operation at a time into one buffer: a job's
    operations as dicts holding their JSON bodies, then the whole as a string and again as
    bytes, were three copies of a drain's records at the target's peak (issue 9: memory)."""
    out = io.BytesIO()
    out.write(b'{"operations": [')
    for index, (op_id, w) in enumerate(by_id.items()):
        params = w.request_params()
        operation = {"method": w.method, "path": "/" + w.path.lstrip("/"),
                     "operation_id": op_id,
                     **({"body": dumpb(w.body).decode()} if w.body is not None else {}),
                     **({"params": params} if params else {})}
        out.write(b", " if index else b"")
        out.write(dumpb(operation))
    out.write(b"]}")
    return out.getvalue()  # the buffer itself, not a copy


def _read_results(archive: bytes, trees: dict[str, Tree | None] | None = None
                  ) -> dict[str, tuple[int, Any]]:
    """operation_id -> (status, answer). A cut-off archive or result file raises (and the
    download is retried): a missing result must not look like an operation never answered.
    One result file at a time, each answer cut down to what its write reads (`trees`) as it
    is parsed: a job's whole answers are never held (issue 9: 66 MB at 10k accounts)."""
    trees = trees or {}
    outcomes: dict[str, tuple[int, Any]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            entries = msgspec.json.decode(handle.read())  # ~2x json.loads (issue 9)
            if not isinstance(entries, list):
                raise ValueError("a batch result file is not a list")
            for entry in entries:
                op_id, status = str(entry.get("operation_id")), int(entry.get("status_code", 0))
                answer = _parse(entry.get("response"))
                if 200 <= status < 300 and not isinstance(answer, Unreadable):
                    answer = pick(answer, trees.get(op_id))
                outcomes[op_id] = (status, answer)
            del entries
    return outcomes


class Unreadable(str):
    """An operation's answer that is not JSON (kept, shortened, for error messages)."""


def _readable(body: Any, expect: dict[str, Any] | None = None) -> bool:
    """A 2xx operation's answer (other than 204) must be a JSON object with the keys a direct
    call's must have."""
    return isinstance(body, dict) and all(isinstance(body.get(key), kind)
                                          for key, kind in (expect or {}).items())


def _parse(text: Any) -> Any:
    if isinstance(text, str):
        if not text.strip():
            return None  # a 204's empty answer
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            return Unreadable(text[:200])
    return text
