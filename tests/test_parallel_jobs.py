"""Issue 7 item 10: two companies' jobs side by side in one project, and the same job started
twice, through `meltano run`.

Companies are set up as the README says: one inherited plugin per company (own run dir, own
state ID), its own token store entry, lookup store and audience.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import e2e_expectation as expectation
import yaml
from e2e_pipeline import MELTANO, PIPELINE, ROOT, make_pipeline, make_project
from reliability.stage import fault_plan
from secret_store import SecretStore, generate_key

HOLD_SECONDS = 100.0  # the first run's hold (below the target's 120 s request timeout),
#                       released as soon as the second run has ended


def company_plugins(name: str, exact: Any, mailchimp: Any, data: Path) -> dict[str, Any]:
    """The meltano.yml entries of one company (the README's recipe, with sandbox URLs)."""
    return {
        "extractors": [{
            "name": f"tap-exactonline--{name}", "inherit_from": "tap-exactonline",
            "config": {"base_url": exact.base_url("nl"), "all_divisions": True,
                       "client_id": exact.client_id, "token_store_name": f"exactonline-{name}",
                       "webhook_inbox_url": f"sqlite:///{data / name / 'inbox.sqlite'}"},
        }],
        "mappers": [{
            # Meltano 4.4 gives a mapping its own config plus its base mapper's: an inherited
            # mapper's `config` is not used, so the company's paths go in the mapping.
            "name": f"mapper-exact-mailchimp--{name}", "inherit_from": "mapper-exact-mailchimp",
            "mappings": [{"name": f"exact-to-mailchimp--{name}", "config": {
                "lookup_store_path": str(data / name / "lookup.sqlite")}}],
        }],
        "loaders": [{
            "name": f"target-mailchimp--{name}", "inherit_from": "target-mailchimp",
            "config": {"base_url": mailchimp.api_base, "login_url": mailchimp.url,
                       "list_id": mailchimp.list_id,
                       "secret_store_path": f"$MELTANO_PROJECT_ROOT/.secrets/{name}",
                       "audit_store_url": f"sqlite:///{data / name / 'audit.sqlite'}"},
        }],
        "jobs": [{"name": f"{name}-to-mailchimp", "tasks": [
            f"tap-exactonline--{name} exact-to-mailchimp--{name} target-mailchimp--{name}"]}],
    }


def test_two_companies_run_side_by_side_each_into_its_own_audience(
    meltano_plugins: None, exact_sandbox_factory: Any, mailchimp_sandbox_factory: Any,
    tmp_path: Path,
) -> None:
    companies = {
        "acme": (exact_sandbox_factory(accounts_per_division=20, seed=21),
                 mailchimp_sandbox_factory(latency=0.01)),
        "globex": (exact_sandbox_factory(accounts_per_division=20, seed=22),
                   mailchimp_sandbox_factory(latency=0.01)),
    }
    config = yaml.safe_load((ROOT / "meltano.yml").read_text())
    config["environments"] = [{"name": "prod"}]
    config["default_environment"] = "prod"
    for name, (exact, mailchimp) in companies.items():
        for kind, entries in company_plugins(name, exact, mailchimp, tmp_path / "data").items():
            (config["plugins"] if kind != "jobs" else config).setdefault(kind, []).extend(
                entries)
    project = make_project(tmp_path / "project", config)
    key = generate_key()
    for name, (exact, mailchimp) in companies.items():  # what set-credential stores
        SecretStore(project / ".secrets", key).write(f"exactonline-{name}-credentials", {
            "client_secret": exact.client_secret,
            "refresh_token": exact.issue_refresh_token("nl")})
        SecretStore(project / ".secrets" / name, key).write("mailchimp",
                                                            {"api_key": mailchimp.api_key})
    env = {**os.environ, "SECRET_STORE_KEY": key, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
           "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}"}

    # The system database exists before the jobs start, as in a project in use: two Meltanos
    # creating a fresh one at once race in its migration (Meltano takes no lock there).
    subprocess.run([str(MELTANO), "upgrade", "database"], cwd=project, env=env, check=True,
                   capture_output=True)
    runs = {}
    for name in companies:  # the second starts while the first is still starting
        runs[name] = subprocess.Popen(
            [str(MELTANO), "run", f"{name}-to-mailchimp"], cwd=project, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
    outputs = {name: run.communicate(timeout=600)[0] for name, run in runs.items()}

    for name, (exact, mailchimp) in companies.items():
        assert runs[name].returncode == 0, outputs[name][-4000:]
        expectation.assert_mailchimp_holds(exact, mailchimp, name)
    # Each company's tokens in its own store entry.
    store = SecretStore(project / ".secrets", key)
    assert store.read("exactonline-acme") and store.read("exactonline-globex")


def test_the_same_job_started_twice_writes_once(
    meltano_plugins: None, exact_sandbox_factory: Any, mailchimp_sandbox_factory: Any,
    tmp_path: Path,
) -> None:
    def fresh(workdir: Path):
        return make_pipeline(exact_sandbox_factory(accounts_per_division=25, seed=31),
                             mailchimp_sandbox_factory(), workdir)

    # What one run writes.
    single = fresh(tmp_path / "single")
    single.run()
    writes_of_one_run = single.mailchimp_writes()

    # The same job twice, the second with --force (Meltano's own guard skipped) while the first
    # is held at its first member write. Started then, not after a fixed sleep: both Meltanos'
    # catalog discovery would share the run dir's tap.properties.json, and one could read the
    # other's half-written file (Meltano's own limit; a fleet's tenants each have a system dir
    # of their own, and Dagster never starts one tenant twice).
    pipeline = fresh(tmp_path / "doubled")
    held = fault_plan(pipeline.mailchimp).add(
        path=r"^/3\.0/lists/[^/]+$", method="POST", kind="slow", delay=HOLD_SECONDS)
    first = subprocess.Popen([*pipeline.command("run"), *PIPELINE], cwd=ROOT, env=pipeline.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while held.count and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = pipeline.run("--force", check=False)
    held.release()  # the second ended while the first held the lock, however slow its start
    first_output = first.communicate(timeout=600)[0]

    outcomes = sorted([first.returncode, second.returncode])
    assert outcomes[0] == 0 and outcomes[1] != 0, first_output[-3000:]
    refused = second.stdout + second.stderr if second.returncode else first_output
    assert "in progress on this machine" in refused
    assert pipeline.mailchimp_writes() == writes_of_one_run
    expected = expectation.expected_state(pipeline.exact)
    assert {e: m["status"] for e, m in pipeline.members().items()
            if m["status"] != "archived"} == expected.members
    assert {o: v["financial_status"] for o, v in pipeline.orders().items()} == expected.orders
