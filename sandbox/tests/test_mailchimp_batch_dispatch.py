"""`/batches` runs its operations by calling the route handlers directly (issue 9: a Flask
request per operation cost as much CPU as the handlers), yet each result is exactly what the
same call over HTTP answers."""

from __future__ import annotations

import json
import re
from typing import Any

import requests
from exactmc_sandbox.mailchimp import MailchimpSandbox
from exactmc_sandbox.mailchimp.batch_dispatch import HOT_ENDPOINTS, RouteTable
from exactmc_sandbox.mailchimp.context import INTERNAL_MARK
from flask import request, request_started
from test_mailchimp_batches import md5, read_results, wait_until_finished
from werkzeug.routing import MapAdapter

STORE = {"id": "s1", "list_id": "{list}", "name": "Shop", "currency_code": "EUR"}
ORDER = {"id": "o1", "customer": {"id": "c1"}, "currency_code": "EUR", "order_total": 12.5,
         "financial_status": "paid", "lines": [{"id": "l1", "product_id": "p1",
                                                "product_variant_id": "p1", "quantity": 1,
                                                "price": 12.5}]}


def operations(list_id: str) -> list[dict[str, Any]]:
    """Every kind of answer: created, updated, refused, not found, no route, wrong method,
    malformed body, empty (204), `fields`/`exclude_fields`, params and a path's own query."""
    member = f"/lists/{list_id}/members/{md5('a@acme.nl')}"
    ops: list[dict[str, Any]] = [
        {"method": "PUT", "path": member, "body": json.dumps(
            {"email_address": "a@acme.nl", "status_if_new": "subscribed",
             "merge_fields": {"FNAME": "Ann", "LNAME": "Smit"}})},
        {"method": "PUT", "path": member, "body": json.dumps(
            {"email_address": "a@acme.nl", "status_if_new": "subscribed",
             "merge_fields": {"FNAME": "Anne"}})},
        {"method": "PUT", "path": f"/lists/{list_id}/members/{md5('test@test.com')}",
         "body": json.dumps({"email_address": "test@test.com", "status_if_new": "subscribed"})},
        {"method": "PUT", "path": member, "body": "{not json"},
        {"method": "PUT", "path": member, "body": json.dumps({"email_address": "b@acme.nl"})},
        {"method": "GET", "path": member, "params": {"fields": "email_address,merge_fields.FNAME"}},
        {"method": "GET", "path": member + "?exclude_fields=_links,location"},
        {"method": "GET", "path": f"/lists/{list_id}/members/{md5('nobody@acme.nl')}"},
        {"method": "GET", "path": f"/lists/{list_id}/members", "params": {"count": 5}},
        {"method": "GET", "path": "/no/such/route"},
        {"method": "DELETE", "path": f"/lists/{list_id}/members"},
        {"method": "POST", "path": member + "/tags", "body": json.dumps(
            {"tags": [{"name": "Klant", "status": "active"}]})},
        {"method": "POST", "path": member + "/tags", "body": json.dumps({"tags": "x"})},
        {"method": "POST", "path": f"/lists/{list_id}", "body": json.dumps(
            {"members": [{"email_address": "c@acme.nl", "status": "subscribed"}],
             "update_existing": True})},
        {"method": "POST", "path": "ecommerce/stores",
         "body": json.dumps({**STORE, "list_id": list_id})},
        {"method": "PUT", "path": "/ecommerce/stores/s1/customers/c1", "body": json.dumps(
            {"id": "c1", "email_address": "a@acme.nl", "opt_in_status": False})},
        {"method": "PUT", "path": "/ecommerce/stores/s1/products/p1", "body": json.dumps(
            {"id": "p1", "title": "Thing", "variants": [{"id": "p1", "title": "Thing"}]})},
        {"method": "PUT", "path": "/ecommerce/stores/s1/orders/o1", "body": json.dumps(ORDER)},
        {"method": "PATCH", "path": "/ecommerce/stores/s1/orders/o1",
         "body": json.dumps({"financial_status": "refunded"})},
        {"method": "GET", "path": "/ecommerce/stores/s1/customers/c1"},
        {"method": "DELETE", "path": member},
        {"method": "DELETE", "path": member},
    ]
    for index, op in enumerate(ops):
        op["operation_id"] = f"op-{index}"
    return ops


_VOLATILE_KEYS = {"unique_email_id", "contact_id", "web_id", "instance"}
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def normalized(data: Any) -> Any:
    """Ids derived from a per-process serial, error instances and the clock's seconds differ
    between two sandboxes; everything else must be equal."""
    if isinstance(data, dict):
        return {k: "<volatile>" if k in _VOLATILE_KEYS else normalized(v)
                for k, v in data.items()}
    if isinstance(data, list):
        return [normalized(v) for v in data]
    if isinstance(data, str) and _TIME.match(data):
        return "<time>"
    return data


def answer(status: int, text: str) -> tuple[int, Any]:
    return status, normalized(json.loads(text)) if text else ""


def over_http(sandbox: MailchimpSandbox, op: dict[str, Any]) -> tuple[int, Any]:
    path = op["path"] if op["path"].startswith("/") else "/" + op["path"]
    got = requests.request(op["method"], sandbox.api_base + path, params=op.get("params"),
                           data=op.get("body"), auth=("u", sandbox.api_key), timeout=5,
                           headers={"Content-Type": "application/json"})
    return answer(got.status_code, got.text)


def run_batch(sandbox: MailchimpSandbox, ops: list[dict[str, Any]]) -> dict[str, dict]:
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    batch = session.post(f"{sandbox.api_base}/batches", json={"operations": ops},
                         timeout=5).json()
    finished = wait_until_finished(session, f"{sandbox.api_base}/batches/{batch['id']}", [])
    assert finished["finished_operations"] == len(ops)
    return {r["operation_id"]: r for chunk in read_results(finished["response_body_url"])
            for r in chunk}


def test_batch_results_are_the_answers_of_the_same_calls_over_http(
        mailchimp_sandbox_factory) -> None:
    batched = mailchimp_sandbox_factory(list_id="L1", batch_start_delay=0.0)
    direct = mailchimp_sandbox_factory(list_id="L1")
    ops = operations("L1")
    results = run_batch(batched, ops)
    for op in ops:
        result = results[op["operation_id"]]
        assert answer(result["status_code"], result["response"]) == over_http(direct, op), op
    statuses = [results[op["operation_id"]]["status_code"] for op in ops]
    assert {200, 204, 400, 404, 405} <= set(statuses)  # the cases above really were hit
    assert batched.members() and normalized(batched.members()) == normalized(direct.members())
    assert normalized(batched.store("s1")) == normalized(direct.store("s1"))


def test_batch_operations_are_not_dispatched_as_flask_requests(mailchimp_sandbox_factory) -> None:
    sandbox = mailchimp_sandbox_factory(batch_start_delay=0.0)
    replayed: list[str] = []

    def seen(_app: Any, **_extra: Any) -> None:
        if request.environ.get(INTERNAL_MARK):
            replayed.append(request.path)

    request_started.connect(seen, sandbox.app)
    try:
        results = run_batch(sandbox, operations(sandbox.list_id))
    finally:
        request_started.disconnect(seen, sandbox.app)
    assert len(results) == len(operations(sandbox.list_id))
    assert replayed == []


def test_a_batch_with_a_revoked_key_answers_401_for_every_operation(
        mailchimp_sandbox_factory) -> None:
    sandbox = mailchimp_sandbox_factory(batch_start_delay=0.3)
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    ops = operations(sandbox.list_id)[:3]
    batch = session.post(f"{sandbox.api_base}/batches", json={"operations": ops},
                         timeout=5).json()
    sandbox.context.auth.api_keys.clear()  # the key is revoked before the batch starts
    sandbox.context.auth.oauth_tokens.add("t")  # the status is read with another credential
    session.auth = None
    session.headers["Authorization"] = "Bearer t"
    finished = wait_until_finished(session, f"{sandbox.api_base}/batches/{batch['id']}", [])
    results = read_results(finished["response_body_url"])
    codes = [r["status_code"] for chunk in results for r in chunk]
    assert codes == [401] * 3
    assert not sandbox.members()


def test_the_results_archive_is_gzipped_for_speed(mailchimp_sandbox_factory) -> None:
    """gzip's fastest level (the header's XFL byte says 4): level 9 cost a sixth of the
    sandbox's CPU under a first sync for results only 15 % smaller."""
    sandbox = mailchimp_sandbox_factory(batch_start_delay=0.0)
    session = requests.Session()
    session.auth = ("u", sandbox.api_key)
    batch = session.post(f"{sandbox.api_base}/batches", timeout=5,
                         json={"operations": operations(sandbox.list_id)[:2]}).json()
    finished = wait_until_finished(session, f"{sandbox.api_base}/batches/{batch['id']}", [])
    archive = requests.get(finished["response_body_url"], timeout=5).content
    assert archive[:2] == b"\x1f\x8b" and archive[8] == 4
    assert len(read_results(finished["response_body_url"])[0]) == 2


def test_the_route_table_matches_as_werkzeug_does() -> None:
    """Every path the table serves, werkzeug routes to the same endpoint with the same args;
    every hot rule is in the table (sample values include other rules' static parts)."""
    app = MailchimpSandbox().app
    table = RouteTable(app)
    adapter = app.url_map.bind("localhost")
    samples = ("x", "L1", "members", "segments", "tags", "orders", "customers", "a b", "é")
    served = set()
    for rule in app.url_map.iter_rules():
        names = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule.rule)
        for value in samples:
            path = re.sub(r"<[^>]+>", value, rule.rule)
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                hot = table.match(method, path)
                if hot is None:
                    continue
                endpoint, args = adapter.match(path, method)
                assert hot == (endpoint, args), (method, path)
                served.add(endpoint)
        if rule.endpoint in HOT_ENDPOINTS:
            assert names and table.match(sorted(rule.methods - {"HEAD", "OPTIONS"})[0],
                                         re.sub(r"<[^>]+>", "v", rule.rule)), rule.rule
    assert served == HOT_ENDPOINTS
    for odd in ("/3.0/lists/L1/", "/3.0/lists//segments/1", "/3.0/lists/L1/segments/1/"):
        assert table.match("POST", odd) is None  # werkzeug's redirects and 404s stay its own


def test_bulk_write_operations_skip_werkzeug_routing(mailchimp_sandbox_factory,
                                                     monkeypatch) -> None:
    sandbox = mailchimp_sandbox_factory(list_id="L1", batch_start_delay=0.0)
    matched: list[tuple[str, str]] = []
    real = MapAdapter.match
    monkeypatch.setattr(MapAdapter, "match",
                        lambda self, path=None, method=None, **kw: matched.append(
                            (str(method), str(path))) or real(self, path, method, **kw))
    results = run_batch(sandbox, operations("L1"))
    assert all(r["status_code"] < 500 for r in results.values())
    writes = [path for method, path in matched if method in ("PUT", "PATCH", "POST")]
    assert "/3.0/ecommerce/stores" in writes  # not a bulk write: werkzeug routes it
    assert not [path for path in writes if "/ecommerce/stores/s1/" in path
                or "/members/" in path or path == "/3.0/lists/L1"], writes
