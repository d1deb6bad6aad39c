"""Partial answers (issue 9: the target's memory): every bulk and single write asks Mailchimp
only for the keys the target reads (`fields`), directly and inside `/batches` operations, and
keeps only those even when a server ignores the selection; what ends up in Mailchimp and in the
audit trail is the same either way."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from exactmc_sandbox.mailchimp import MailchimpSandbox
from target_mailchimp.answer_fields import pick, selection, tree
from target_mailchimp.client import MailchimpClient
from target_mailchimp.operations import Write, WriteExecutor
from target_mailchimp.testing import audit_rows, base_config, by_email, run_target, stream

_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^\"]*")


class Observed:
    """WSGI middleware around a sandbox: records each direct call's query, and with
    `ignore_fields` acts as a server that ignores `fields` (removed from direct calls' queries
    and from `/batches` operations' params before the sandbox sees them)."""

    def __init__(self, sandbox: MailchimpSandbox, ignore_fields: bool) -> None:
        self.app = sandbox.app.wsgi_app
        self.ignore = ignore_fields
        self.queries: list[tuple[str, str, dict[str, str]]] = []
        sandbox.app.wsgi_app = self  # type: ignore[method-assign]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        self.queries.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], query))
        if self.ignore:
            query.pop("fields", None)
            environ["QUERY_STRING"] = urlencode(query)
            if environ["PATH_INFO"].endswith("/batches") and environ["REQUEST_METHOD"] == "POST":
                body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
                for op in body["operations"]:
                    (op.get("params") or {}).pop("fields", None)
                data = json.dumps(body).encode()
                environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(data), str(len(data))
        return self.app(environ, start_response)


def _operations(sandbox: MailchimpSandbox) -> list[dict[str, Any]]:
    """Every operation of every `/batches` job the sandbox was sent, as it recorded them."""
    runner = sandbox.context.batches
    return [json.loads(line) for batch in list(runner.batches.values())
            for line in runner.operations.lines(*batch.operations)]


def _scenario(config: dict[str, Any]) -> None:
    """Bulk and single writes, enough of each to go as `/batches` jobs (batch_size 2: four
    batch-subscribe chunks; four tags; eight customers, orders and member updates)."""
    people = [f"p{i}@example.com" for i in range(8)]
    run_target(config, [
        *stream("members", [{"email": e, "merge_fields": {"FNAME": f"P{i}"}}
                            for i, e in enumerate(people)]),
        *stream("member_tags", [{"email": e, "tag_key": f"t{i % 4}", "tag_name": f"T{i % 4}"}
                                for i, e in enumerate(people)]),
        *stream("products", [{"id": "P1", "title": "Widget", "price": 10.0}]),
        *stream("customers", [{"id": f"C{i}", "email": e, "opt_in_status": False}
                              for i, e in enumerate(people)]),
        *stream("orders", [{"id": f"O{i}", "customer_id": f"C{i}", "currency_code": "eur",
                            "order_total": 10.0, "financial_status": "paid",
                            "lines": [{"id": "1", "product_id": "P1", "quantity": 1,
                                       "price": 10.0}]} for i in range(8)]),
    ])
    # Existing members come back from batch subscribe (ERROR_CONTACT_EXISTS) and are PUT;
    # a fake address is refused in the batch answer's errors; a stranger's tag is refused.
    run_target(config, [
        *stream("members", [*({"email": e, "merge_fields": {"FNAME": "Again"}} for e in people),
                            {"email": "new@example.com"}, {"email": "test@test.com"}]),
        *stream("member_tags", [{"email": "stranger@example.com", "tag_key": "t0",
                                 "tag_name": "T0"}]),
    ])


def _outcome(sandbox: MailchimpSandbox, config: dict[str, Any]) -> tuple[Any, Any]:
    members = {e: (m["status"], m["merge_fields"].get("FNAME"), sorted(m["tags"]))
               for e, m in by_email(sandbox).items()}
    audit = sorted((r["stream"], r["record_key"], r["operation"], r["outcome"], r["reason"],
                    _STAMP.sub("<time>", r["response"] or "")) for r in audit_rows(config))
    return members, audit


def test_writes_ask_for_what_they_read_and_the_outcome_is_the_same_if_a_server_ignores_it(
    mailchimp_sandbox_factory: Callable[..., MailchimpSandbox], tmp_path
) -> None:
    outcomes = []
    for ignore in (False, True):
        sandbox = mailchimp_sandbox_factory()
        Observed(sandbox, ignore_fields=ignore)
        config = base_config(sandbox, tmp_path / str(ignore), batch_size=2)
        _scenario(config)
        outcomes.append(_outcome(sandbox, config))
        if ignore:
            continue
        fields_of = {}
        for op in _operations(sandbox):
            kind = (op["method"], re.sub(r"/[0-9a-f]{32}$|/[A-Z]\d+$|/\d+$", "/*", op["path"]))
            fields_of.setdefault(kind, set()).add((op.get("params") or {}).get("fields"))
        list_id = sandbox.list_id
        # Batch subscribe: the members' keys the target reads, and the errors whole.
        subscribe = fields_of[("POST", f"/lists/{list_id}")]
        assert subscribe == {"new_members.id,new_members.email_address,new_members.status,"
                             "new_members.last_changed,updated_members.id,"
                             "updated_members.email_address,updated_members.status,"
                             "updated_members.last_changed,errors,total_created,"
                             "total_updated,error_count"}
        assert fields_of[("POST", f"/lists/{list_id}/segments/*")] == {
            "errors,total_added,total_removed,error_count"}
        assert fields_of[("PUT", f"/lists/{list_id}/members/*")] == {
            "id,email_address,status,last_changed"}
        assert fields_of[("PUT", "/ecommerce/stores/exact-store/customers/*")] == {"id"}
        assert fields_of[("PUT", "/ecommerce/stores/exact-store/orders/*")] == {
            "id,financial_status"}
    honoured, ignored = outcomes
    assert honoured == ignored
    members, audit = honoured
    assert members["p3@example.com"] == ("subscribed", "Again", ["T3"])
    assert members["new@example.com"][0] == "subscribed"
    assert "test@test.com" not in members
    kinds = {(stream_, op, outcome) for stream_, _, op, outcome, *_ in audit}
    assert {("members", "create", "ok"), ("members", "update", "ok"),
            ("members", "upsert", "failed"), ("member_tags", "tag", "ok"),
            ("member_tags", "tag", "failed"), ("customers", "upsert", "ok"),
            ("orders", "upsert", "ok")} <= kinds
    # What the audit trail says of an answer is still there (ids, statuses, last_changed).
    created = next(r for r in audit if r[1] == "p0@example.com" and r[2] == "create")
    assert '"status": "subscribed"' in created[5] and '"last_changed"' in created[5]
    order = next(r for r in audit if r[1] == "O0")
    assert order[5] == '200 {"id": "O0", "financial_status": "paid"}'


def test_direct_bulk_calls_ask_for_what_they_read(mailchimp_sandbox: MailchimpSandbox,
                                                   config) -> None:
    seen = Observed(mailchimp_sandbox, ignore_fields=False)
    run_target(config, [
        *stream("members", [{"email": "a@example.com"}, {"email": "b@example.com"}]),
        *stream("member_tags", [{"email": "a@example.com", "tag_key": "x", "tag_name": "X"}]),
    ])
    list_id = mailchimp_sandbox.list_id
    posts = {path: query.get("fields") for method, path, query in seen.queries
             if method == "POST" and path.startswith(f"/3.0/lists/{list_id}")}
    assert posts[f"/3.0/lists/{list_id}"].startswith("new_members.id,new_members.email_address")
    segment_posts = [f for p, f in posts.items() if re.fullmatch(r".*/segments/\d+", p)]
    assert segment_posts == ["errors,total_added,total_removed,error_count"]
    assert sorted(by_email(mailchimp_sandbox)["a@example.com"]["tags"]) == ["X"]


def test_answers_are_trimmed_to_the_selection_when_a_server_sends_everything(
    mailchimp_sandbox: MailchimpSandbox,
) -> None:
    """What the executor hands back (and so what the target holds until it is audited) is
    the selection only, directly and from a `/batches` job, even from a server ignoring it."""
    Observed(mailchimp_sandbox, ignore_fields=True)
    client = MailchimpClient(mailchimp_sandbox.api_base, ("u", mailchimp_sandbox.api_key),
                             backoff_factor=0.01)
    list_id = mailchimp_sandbox.list_id
    fields = "new_members.email_address,new_members.status,errors"

    def subscribe(i: int) -> Write:
        return Write("members", f"chunk {i}", "create", "POST", f"lists/{list_id}",
                     {"members": [{"email_address": f"m{i}@example.com",
                                   "status": "subscribed"}]},
                     expect={"new_members": list, "updated_members": list, "errors": list},
                     fields=fields)

    for threshold in (0, 2):  # directly, then as one /batches job
        executor = WriteExecutor(client, batch_threshold=threshold, poll_interval=0.05)
        results = executor.execute([subscribe(threshold * 10 + i) for i in range(2)])
        for result in results:
            assert result.ok, result.error
            assert set(result.response) == {"new_members", "updated_members", "errors"}
            assert [set(m) for m in result.response["new_members"]] == [
                {"email_address", "status"}]
    client.close()


def test_selection_helpers() -> None:
    # Keys an answer must have are added unless a path already selects inside them.
    assert selection("new_members.id,errors", ("new_members", "errors", "total")) == (
        "new_members.id,errors,total")
    assert selection(None, ("errors",)) is None
    answer = {"a": [{"x": 1, "y": 2}], "b": {"c": 1, "d": 2}, "e": 3}
    assert pick(answer, tree("a.x,b.c,missing")) == {"a": [{"x": 1}], "b": {"c": 1}}
    assert pick(answer, tree("b,b.c")) == {"b": {"c": 1, "d": 2}}
    assert pick(answer, None) is answer


def test_a_jobs_request_body_is_built_without_copies_of_its_operations() -> None:
    """The `/batches` body is the JSON of every operation (bodies as JSON strings), built one
    operation at a time: building it holds little beyond the body itself (it was the op
    dicts with their bodies, the whole as a string and as bytes: over 3x)."""
    import tracemalloc

    from target_mailchimp.operations import batch_payload

    writes = {f"op{i}": Write("orders", f"O{i}", "upsert", "PUT", f"ecommerce/stores/s/orders/O{i}",
                              {"id": f"O{i}", "lines": [{"id": str(n), "title": "é" * 40}
                                                        for n in range(20)]},
                              fields="id,financial_status")
              for i in range(2000)}
    tracemalloc.start()
    try:
        payload = batch_payload(writes)
        size = len(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.8 * size, (peak, size)
    operations = json.loads(payload)["operations"]
    assert json.loads(operations[1].pop("body")) == writes["op1"].body  # its JSON, any form
    assert operations[1] == {"method": "PUT", "path": "/ecommerce/stores/s/orders/O1",
                             "operation_id": "op1", "params": {"fields": "id,financial_status"}}
    assert len(operations) == 2000


def test_the_runs_view_of_a_large_audience_shares_its_statuses_and_times(
    mailchimp_sandbox: MailchimpSandbox, config
) -> None:
    """The run holds (status, last_changed) of every member of the audience (100k members at
    100k accounts): one pair object per distinct value, not one per member (issue 9: the
    target's memory grew with the audience)."""
    import datetime

    from target_mailchimp.audience import AudienceView

    run_target(config, stream("members", [{"email": f"v{i}@example.com"} for i in range(40)]))
    client = MailchimpClient(mailchimp_sandbox.api_base, ("u", mailchimp_sandbox.api_key))
    view = AudienceView(client, mailchimp_sandbox.list_id)
    members = view.changed_since(datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    client.close()
    assert len(members) == 40
    values = list(members.values())
    assert len({id(value) for value in values}) == len(set(values)) < 40


def test_remembering_a_large_audience_holds_one_chunk_of_rows_at_a_time(
    database_url: str, tmp_path, monkeypatch
) -> None:
    """The end of a 100k first sync remembers every member read (audience_memory.py): rows
    built and written a chunk at a time in one transaction, not all 100k as dicts at once
    (the target's peak was there: +30 MB)."""
    import datetime
    import tracemalloc

    from target_mailchimp.audience_memory import AudienceMemory
    from target_mailchimp.audit import AuditStore

    monkeypatch.delenv("EXACTMC_DATABASE_URL", raising=False)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))
    audit = AuditStore(database_url, "run-1")
    memory = AudienceMemory(audit.engine, "L1")
    members = {f"member{i:06d}@example.com": ("subscribed", "2026-01-01T00:00:00+00:00")
               for i in range(20_000)}
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    memory.remember({"warm@example.com": ("subscribed", "x")}, start, start)  # connect first
    tracemalloc.start()
    try:
        memory.remember(members, start, start + datetime.timedelta(1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak
    assert len(memory.members()) == 20_001
    assert memory.span() == (start, start + datetime.timedelta(1))
    audit.close()


def test_confirming_a_whole_audiences_side_effects_settles_a_chunk_at_a_time(
    mailchimp_sandbox: MailchimpSandbox, config
) -> None:
    """Customers touch every member: at the end of a first sync one confirmation settles the
    whole audience's write-ahead notes (own_writes.py). Settled a chunk at a time, not as
    100k members' rows at once (the target's last peak at 100k accounts)."""
    import datetime
    import tracemalloc

    import requests
    from target_mailchimp.own_writes import confirm_side_effects, member_side_effects
    from target_mailchimp.run_context import RunContext

    emails = [f"s{i:05d}@example.com" for i in range(8000)]
    session = requests.Session()
    session.auth = ("u", mailchimp_sandbox.api_key)
    for start in range(0, len(emails), 500):
        session.post(f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}",
                     json={"members": [{"email_address": e, "status": "subscribed"}
                                       for e in emails[start:start + 500]]}, timeout=30)
    context = RunContext(config)
    with member_side_effects(context, emails):
        pass  # the writes (customers) would be here; the members exist already
    context.audience.changed_since(datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    calls = mailchimp_sandbox.calls()["total"]
    tracemalloc.start()
    try:
        confirm_side_effects(context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mailchimp_sandbox.calls()["total"] == calls  # confirmed from the read just made
    own = context.audit.own_member_changes(context.list_id, emails)
    assert len(own) == 8000 and all(w.last_changed and w.pending_since is None
                                    for w in own.values())
    assert not context.audit.pending_members(context.list_id)
    assert peak < 3_500_000, peak
    context.close()
