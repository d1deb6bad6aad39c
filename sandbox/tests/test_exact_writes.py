"""The write endpoints a loader uses: PUT contact, POST/PUT cost center, `$filter` with `or`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

SECRET = "webhook-secret-for-write-tests"


class Receiver:
    """A callback endpoint that records raw bodies (answers 200)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(self.rfile.read(length))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sandbox(exact_sandbox_factory):
    return exact_sandbox_factory(webhook_secret=SECRET, webhook_validation_delay=0)


@pytest.fixture
def api(sandbox):
    tokens = requests.post(f"{sandbox.base_url()}/api/oauth2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": sandbox.issue_refresh_token(),
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}).json()
    session = requests.Session()
    session.headers.update({"Accept": "application/json",
                            "Authorization": f"Bearer {tokens['access_token']}"})
    session.base = f"{sandbox.base_url()}/api/v1/101"  # type: ignore[attr-defined]
    return session


def _contact(sandbox, **fields):
    account = sandbox.rows("Accounts", 101)[0]
    return sandbox.create("Contacts", {"Division": 101, "Account": account["ID"],
                                       "LastName": "Test", **fields})


def test_put_contact_excludes_from_mailing_bumps_versions_and_fires_webhook(sandbox, api):
    receiver = Receiver()
    try:
        subscribed = api.post(f"{api.base}/webhooks/WebhookSubscriptions", timeout=10,
                              json={"CallbackURL": receiver.url, "Topic": "Contacts"})
        assert subscribed.status_code == 201
        contact = _contact(sandbox, Email="ann@example.com")
        sandbox.webhook_deliveries()
        before = len(receiver.bodies)
        sandbox.advance_clock(60)
        put = api.put(f"{api.base}/crm/Contacts(guid'{contact['ID']}')", timeout=10,
                      json={"IsMailingExcluded": True})
        assert put.status_code == 204 and put.content == b""
        sandbox.webhook_deliveries()
        assert len(receiver.bodies) == before + 1
        assert b'"Action":"Update"' in receiver.bodies[-1]
    finally:
        receiver.close()
    after = next(r for r in sandbox.rows("Contacts", 101) if r["ID"] == contact["ID"])
    assert after["IsMailingExcluded"] is True
    assert after["Modified"] > contact["Modified"]
    assert after["Email"] == "ann@example.com"  # a partial update leaves the rest alone
    # The sync feed serves it again (a newer Timestamp).
    page = api.get(f"{api.base}/sync/CRM/Contacts", timeout=10, params={
        "$select": "ID,IsMailingExcluded,Timestamp"}).json()["d"]["results"]
    assert page[-1]["ID"] == contact["ID"] and page[-1]["IsMailingExcluded"] is True


@pytest.mark.parametrize("body", [{"Nope": 1}, {"IsMailingExcluded": "yes"},
                                  {"Modified": "2024-01-01T00:00:00Z"}])
def test_put_contact_refuses_unknown_read_only_and_ill_typed_fields(sandbox, api, body):
    contact = _contact(sandbox, Email="bob@example.com")
    put = api.put(f"{api.base}/crm/Contacts(guid'{contact['ID']}')", json=body, timeout=10)
    assert put.status_code == 400
    after = next(r for r in sandbox.rows("Contacts", 101) if r["ID"] == contact["ID"])
    assert after == contact


def test_put_contact_of_another_division_is_not_found(sandbox, api):
    other = sandbox.rows("Contacts", 102)[0]
    put = api.put(f"{api.base}/crm/Contacts(guid'{other['ID']}')",
                  json={"IsMailingExcluded": True}, timeout=10)
    assert put.status_code == 404


def test_cost_center_create_duplicate_and_rename(sandbox, api):
    created = api.post(f"{api.base}/hrm/Costcenters", timeout=10,
                       json={"Code": "NEW1", "Description": "Brand new"})
    assert created.status_code == 201
    entity = created.json()["d"]
    assert entity["Code"] == "NEW1" and entity["Description"] == "Brand new" and entity["ID"]
    duplicate = api.post(f"{api.base}/hrm/Costcenters", timeout=10,
                         json={"Code": "new1", "Description": "Again"})
    assert duplicate.status_code == 400
    assert [r["Code"] for r in sandbox.rows("Costcenters", 101)].count("NEW1") == 1
    # The same code in another division is another cost center.
    assert sandbox.create("Costcenters", {"Division": 102, "Code": "NEW1",
                                          "Description": "Elsewhere"})["Code"] == "NEW1"
    sandbox.advance_clock(30)
    renamed = api.put(f"{api.base}/hrm/Costcenters(guid'{entity['ID']}')", timeout=10,
                      json={"Description": "Renamed"})
    assert renamed.status_code == 204
    row = next(r for r in sandbox.rows("Costcenters", 101) if r["ID"] == entity["ID"])
    assert row["Description"] == "Renamed" and row["Modified"] > row["Created"]
    taken = next(r for r in sandbox.rows("Costcenters", 101) if r["ID"] != entity["ID"])
    clash = api.put(f"{api.base}/hrm/Costcenters(guid'{entity['ID']}')", timeout=10,
                    json={"Code": taken["Code"]})
    assert clash.status_code == 400


def test_filter_with_or_on_email_fields_and_codes(sandbox, api):
    ann = _contact(sandbox, Email="Ann.O'Neil@Example.com")
    bea = _contact(sandbox, Email="private@example.com", BusinessEmail="bea@example.com")
    _contact(sandbox, Email="someone.else@example.com")
    where = ("Email eq 'ann.o''neil@example.com' or BusinessEmail eq 'ann.o''neil@example.com'"
             " or Email eq 'bea@example.com' or BusinessEmail eq 'bea@example.com'")
    found = api.get(f"{api.base}/crm/Contacts", timeout=10, params={
        "$filter": where, "$select": "ID,Email,BusinessEmail,IsMailingExcluded"})
    assert found.status_code == 200, found.text
    assert {r["ID"] for r in found.json()["d"]["results"]} == {ann["ID"], bea["ID"]}
    # `and` binds tighter than `or`; parentheses group.
    grouped = api.get(f"{api.base}/crm/Contacts", timeout=10, params={
        "$filter": "(Email eq 'private@example.com' or Email eq 'x@y.z') and "
                   "BusinessEmail eq 'bea@example.com'"}).json()["d"]["results"]
    assert [r["ID"] for r in grouped] == [bea["ID"]]
    codes = [r["Code"] for r in sandbox.rows("Costcenters", 101)[:2]]
    centers = api.get(f"{api.base}/hrm/Costcenters", timeout=10, params={
        "$filter": f"Code eq '{codes[0]}' or Code eq '{codes[1]}'"}).json()["d"]["results"]
    assert sorted(r["Code"] for r in centers) == sorted(codes)
    # An address holding the word "or" is one literal, not two conditions.
    tricky = _contact(sandbox, Email="x or y@example.com")
    one = api.get(f"{api.base}/crm/Contacts", timeout=10, params={
        "$filter": "Email eq 'x or y@example.com'"}).json()["d"]["results"]
    assert [r["ID"] for r in one] == [tricky["ID"]]
    for bad in ("Email eq 'a' or", "(Email eq 'a'", "Secret eq 'a' or Email eq 'b'"):
        assert api.get(f"{api.base}/crm/Contacts", params={"$filter": bad},
                       timeout=10).status_code == 400
    # The sync feeds still accept only `Timestamp gt n`.
    assert api.get(f"{api.base}/sync/CRM/Contacts", timeout=10, params={
        "$select": "ID", "$filter": "Timestamp gt 1 or Timestamp gt 2"}).status_code == 400
