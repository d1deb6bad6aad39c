"""The fast path both ways through the webhook service and Meltano, against both sandboxes.

`exactmc-webhooks serve` (the real executable, settings from WEBHOOKS_* variables) receives the
Exact sandbox's signed deliveries and the Mailchimp sandbox's list webhooks, and itself runs
`meltano run exactonline-to-mailchimp` / `meltano run mailchimp-to-exactonline`; no test code
runs a job after the first sync.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from e2e_pipeline import MELTANO, ROOT, Pipeline, make_pipeline, stop_service
from secret_store import SecretStore

SECRET = "webhook-secret-service-e2e"
SERVICE = ROOT / ".venv" / "bin" / "exactmc-webhooks"


def way_back_env(pipeline: Pipeline) -> None:
    exact, workdir = pipeline.exact, pipeline.workdir
    pipeline.env.update({
        "TARGET_EXACTONLINE_BASE_URL": exact.base_url("nl"),
        "TARGET_EXACTONLINE_CLIENT_ID": exact.client_id,
        "TARGET_EXACTONLINE_ALL_DIVISIONS": "true",
        "TARGET_EXACTONLINE_TOKEN_STORE_PATH": str(workdir / "secrets"),
        "TARGET_EXACTONLINE_AUDIT_STORE_URL": f"sqlite:///{workdir / 'exact-audit.sqlite'}",
        "TARGET_EXACTONLINE_WRITE_EXCLUSIONS": "true",
    })


def start_service(pipeline: Pipeline) -> tuple[subprocess.Popen, str]:
    workdir = pipeline.workdir
    env = {**pipeline.env,
           "WEBHOOKS_CLIENT_ID": pipeline.exact.client_id,
           "WEBHOOKS_SECRET_STORE_PATH": str(workdir / "secrets"),
           "WEBHOOKS_TRIGGER_COMMAND": f"{MELTANO} run exactonline-to-mailchimp",
           "WEBHOOKS_MAILCHIMP_TRIGGER_COMMAND": f"{MELTANO} run mailchimp-to-exactonline",
           "WEBHOOKS_DEBOUNCE_SECONDS": "1"}
    url = subprocess.run([str(SERVICE), "mailchimp-url", "--config", "ENV", "--base", "http://h"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    log_path = workdir / "service.log"
    process = subprocess.Popen([str(SERVICE), "serve", "--config", "ENV", "--port", "0"],
                               cwd=ROOT, env=env, stdout=log_path.open("w"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (found := re.search(r"\(http://([\d.:]+)\)", log_path.read_text())):
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)
    base = f"http://{found.group(1)}"
    return process, url.replace("http://h", base)


@pytest.fixture
def served(meltano_plugins: None, exact_sandbox_factory: Any, mailchimp_sandbox_factory: Any,
           tmp_path: Path) -> Iterator[tuple[Pipeline, str]]:
    exact = exact_sandbox_factory(accounts_per_division=5, seed=11, webhook_secret=SECRET,
                                  webhook_validation_delay=0)
    pipeline = make_pipeline(exact, mailchimp_sandbox_factory(), tmp_path)
    way_back_env(pipeline)
    SecretStore(tmp_path / "secrets", pipeline.secrets["store_key"]).update(
        f"exactonline-{exact.client_id}-credentials", webhook_secret=SECRET)
    pipeline.run()  # the first full sync, as the schedule would have done
    process, mailchimp_url = start_service(pipeline)
    try:
        yield pipeline, mailchimp_url
    finally:
        stop_service(process)


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def test_changes_flow_both_ways_through_the_service(served):
    pipeline, mailchimp_url = served
    exact, mailchimp = pipeline.exact, pipeline.mailchimp
    service_base = mailchimp_url.split("/mailchimp/")[0]
    pipeline.env["TAP_EXACTONLINE_WEBHOOK_CALLBACK_URL"] = f"{service_base}/exact"
    pipeline.invoke("tap-exactonline:webhooks-subscribe")

    # Exact → Mailchimp: a new customer and contact, with no job run by the test.
    account = exact.create("Accounts", {"Division": 101, "Name": "Snel B.V.", "Status": "C",
                                        "City": "Delft", "Country": "NL"})
    exact.create("Contacts", {"Division": 101, "Account": account["ID"], "FirstName": "Sanne",
                              "LastName": "Snel", "Email": "sanne@snel.nl"})
    assert wait_for(lambda: "sanne@snel.nl" in pipeline.members(), 120), (
        pipeline.workdir / "service.log").read_text()[-3000:]

    # Mailchimp → Exact: she unsubscribes; the service runs the way back.
    answer = requests.post(f"{mailchimp.api_base}/lists/{mailchimp.list_id}/webhooks",
                           json={"url": mailchimp_url}, auth=("x", mailchimp.api_key),
                           timeout=30)
    assert answer.ok, answer.text
    mailchimp.set_member_status("sanne@snel.nl", "unsubscribed")

    def excluded() -> bool:
        rows = [c for c in exact.rows("Contacts", 101) if c.get("Email") == "sanne@snel.nl"]
        return bool(rows) and all(c["IsMailingExcluded"] for c in rows)

    assert wait_for(excluded, 120), (pipeline.workdir / "service.log").read_text()[-3000:]
    # The exclusion written to Exact fires Exact's own webhook: the forward run it starts
    # keeps her unsubscribed (no loop, no re-subscribe).
    assert wait_for(lambda: idle(pipeline), 180)
    assert pipeline.members()["sanne@snel.nl"]["status"] == "unsubscribed"

    # Neither webhook secret reached a file (service log, Meltano's run files, inboxes).
    pipeline.secrets["exact_webhook_secret"] = SECRET
    pipeline.secrets["mailchimp_webhook_secret"] = mailchimp_url.rsplit("/", 1)[1]
    assert pipeline.files_with_secrets() == []


def idle(pipeline: Pipeline) -> bool:
    """Every triggered run has ended and none is due (nothing new for a few seconds)."""
    log = (pipeline.workdir / "service.log").read_text()
    starts, ends = len(re.findall(r"Trigger \w+: run \d+ starts", log)), len(
        re.findall(r"Trigger \w+: run \d+ ended", log))
    if starts != ends:
        return False
    time.sleep(4)  # past the debounce: a run due now would have started
    return (pipeline.workdir / "service.log").read_text() == log
