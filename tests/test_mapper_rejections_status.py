"""The mapper's dead letters reach `target-mailchimp:status` through the one database URL
(issue 10): what the mapper writes to its table `rejections` is what status reads, with both
left to their default resolution (EXACTMC_DATABASE_URL and the tenant), on SQLite and on
PostgreSQL. (`test_status_e2e` covers the same through `meltano run` on the SQLite files.)"""

from __future__ import annotations

import io
import json

from mapper_exact_mailchimp.mapper import ExactToMailchimpMapper
from secret_store.database import DATABASE_URL_ENV, TENANT_ENV
from target_mailchimp.status import StatusReport, render_text

ACCOUNT = {"ID": "7f3c2a10-0000-4000-8000-000000000001", "Division": 101, "Name": "Bakkerij",
           "Email": None, "Status": "C"}
BAD = {"ID": "7f3c2a10-0000-4000-8000-000000000009", "Account": ACCOUNT["ID"], "Division": 101,
       "Email": "not an address", "FirstName": "No", "LastName": "Address"}


def _map(*records: tuple[str, dict]) -> None:
    mapper = ExactToMailchimpMapper(config={})
    messages = [{"type": "RECORD", "stream": stream, "record": record}
                for stream, record in records]
    try:
        mapper.listen(io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    finally:
        mapper.close()


def test_status_reads_what_the_mapper_rejected_for_its_tenant_only(
        database_url, monkeypatch, tmp_path):
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    monkeypatch.setenv("MELTANO_SYS_DIR_ROOT", str(tmp_path / "sys"))  # never used here
    monkeypatch.setenv(TENANT_ENV, "acme")
    _map(("accounts", ACCOUNT), ("contacts", BAD))
    audit = {"audit_store_url": f"sqlite:///{tmp_path}/audit.sqlite"}

    rejected = StatusReport(audit).build()["rejected_records"]
    assert rejected["count"] == 1
    [group] = rejected["by_reason"]
    assert [(e["stream"], e["division"], e["key"]) for e in group["newest"]] == [
        ("contacts", 101, BAD["ID"])]

    monkeypatch.setenv(TENANT_ENV, "other")  # another tenant's status sees none of it
    assert StatusReport(audit).build()["rejected_records"] == {
        "count": 0, "by_reason": [], "fixed_since": 0}
    assert not (tmp_path / "sys").exists()


def test_status_shows_only_the_rejections_still_open(database_url, monkeypatch, tmp_path):
    """A record fixed in Exact leaves the report (the dead letter stays, as history); broken
    again, it is back. Months of fixed records must not keep status on "attention"."""
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)
    monkeypatch.setenv(TENANT_ENV, "acme")
    audit = {"audit_store_url": f"sqlite:///{tmp_path}/audit.sqlite"}
    _map(("accounts", ACCOUNT), ("contacts", BAD))
    assert StatusReport(audit).build()["rejected_records"]["count"] == 1

    _map(("contacts", {**BAD, "Email": "fixed@example.com"}))
    rejected = StatusReport(audit).build()["rejected_records"]
    assert rejected == {"count": 0, "by_reason": [], "fixed_since": 1}
    assert "Records rejected by the mapper: none (1 fixed since)." in render_text(
        StatusReport(audit).build())

    _map(("contacts", {**BAD, "Email": "broken again"}))
    rejected = StatusReport(audit).build()["rejected_records"]
    assert rejected["count"] == 1 and rejected["fixed_since"] == 0  # open again, not fixed
    [group] = rejected["by_reason"]
    assert [e["key"] for e in group["newest"]] == [BAD["ID"]]
