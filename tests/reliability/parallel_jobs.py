"""Two companies' jobs side by side in one project, and the same job started twice."""

from __future__ import annotations

import random
import time
from functools import partial
from pathlib import Path
from typing import Any

from secret_store import SecretStore

from reliability.audience_history import seed_audience_history
from reliability.case_spec import Case
from reliability.stage import HOLD_WAIT, Factories, Stage, fault_plan, new_stage
from reliability.verdict import Outcome

COMPANY_DIVISIONS = {"nl": (101, 102, 103), "be": (201,)}
ME = r"/api/v1/current/Me$"
MEMBERS_UPSERT = r"^/3\.0/lists/[^/]+$"  # POST: batch subscribe
WRITE_TOLERANCE = 5  # a second job that starts and stops may touch a few things


def _company_stage(name: str, factories: Factories, workdir: Path, exact: Any,
                   region: str) -> Stage:
    """A pipeline for one Exact company (its own audience and token store)."""
    _, mailchimp_factory = factories
    stage = new_stage(name, ((lambda **_: exact), mailchimp_factory), workdir / region)
    pipeline = stage.pipeline
    refresh_token = exact.issue_refresh_token(region)
    pipeline.env["TAP_EXACTONLINE_BASE_URL"] = exact.base_url(region)
    # The bootstrap token goes where the e2e helper keeps it: the encrypted store.
    store = SecretStore(pipeline.workdir / "secrets", pipeline.secrets["store_key"])
    store.update(f"exactonline-{exact.client_id}-credentials", refresh_token=refresh_token)
    pipeline.secrets[f"refresh_token_{region}"] = refresh_token
    stage.divisions = COMPANY_DIVISIONS[region]
    return stage


def two_companies(factories: Factories, workdir: Path, rng: random.Random) -> Outcome:
    exact_factory, _ = factories
    exact = exact_factory(accounts_per_division=10, seed=rng.randint(1, 10_000))
    stages = {region: _company_stage("parallel: two companies' jobs side by side", factories,
                                     workdir, exact, region) for region in COMPANY_DIVISIONS}
    shared_db = stages["nl"].pipeline.env["MELTANO_DATABASE_URI"]
    stages["be"].pipeline.env["MELTANO_DATABASE_URI"] = shared_db  # one project, one system db
    for stage in stages.values():
        seed_audience_history(stage)
    processes = {}
    for region, stage in stages.items():
        processes[region] = stage.start(f"--state-id-suffix={region}")
        time.sleep(rng.uniform(0.2, 1.0))
    for region, stage in stages.items():
        stage.finish(processes[region])
    outcome = Outcome(stages["nl"].name, tried=1)
    for region, stage in stages.items():
        part = stage.outcome()
        _merge(outcome, part, prefix=f"[{region}] ")
    return outcome


def doubled_job(factories: Factories, workdir: Path, rng: random.Random, *,
                interleaved: bool = False) -> Outcome:
    """The same job twice (the second with --force, as after a crash): it must not write
    everything twice. Compared with the writes of one run on an identical twin.

    The second starts 1–3 s after the first, or, `interleaved`, the worst order the sandboxes
    can force: the second starts (and reads the job's state) while the first is held at its
    first Mailchimp write, before any STATE; its tap then waits on Exact (8 s) while the first
    finishes, and it syncs from the state it read."""
    seed = rng.randint(1, 10_000)
    twin = new_stage("twin", factories, workdir / "twin", seed=seed)
    seed_audience_history(twin)
    twin.run()
    single = twin.pipeline.mailchimp_writes()

    name = ("parallel: the same job started again while the first writes" if interleaved
            else "parallel: the same job started twice, 1–3 s apart")
    stage = new_stage(name, factories, workdir / "doubled", seed=seed)
    seed_audience_history(stage)
    if interleaved:
        exact = fault_plan(stage.exact)
        exact.add(path=ME, kind="slow", delay=0.0)  # the first job's
        exact.add(path=ME, kind="slow", delay=8.0)  # the second job's
        first_write = fault_plan(stage.mailchimp).add(
            path=MEMBERS_UPSERT, method="POST", kind="slow", delay=4.0)
    exact_calls_before = stage.exact.calls()["total"]
    first = stage.start()
    if interleaved:
        deadline = time.monotonic() + HOLD_WAIT
        while first_write.count and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    else:
        # 1–3 s after the first's tap has started, not after its Meltano has: the two
        # Meltanos' catalog discovery share the run dir's tap.properties.json, and one can read
        # the other's half-written file (Meltano's own limit, outside what this case tests).
        deadline = time.monotonic() + HOLD_WAIT
        while (stage.exact.calls()["total"] == exact_calls_before and first.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(rng.uniform(1.0, 3.0))
    second = stage.start("--force")
    second_rc = stage.finish(second)
    first_rc = stage.finish(first)
    stage.last_returncode, stage.judged_run = first_rc, 1
    outcome = stage.outcome()
    outcome.notes.append(f"second job exited {second_rc}")
    total = stage.pipeline.mailchimp_writes()
    if twin.last_returncode == 0 and total > single + WRITE_TOLERANCE:
        outcome.add("duplicated", f"{total} Mailchimp writes for what one run does in {single}; "
                    f"extra: {_extra_writes(twin, stage)}", total - single)
    return outcome


def _extra_writes(single: Stage, doubled: Stage) -> str:
    """Which endpoints the doubled job wrote to more often than one run did."""
    once = single.mailchimp.calls()["by_endpoint"]
    twice = doubled.mailchimp.calls()["by_endpoint"]
    extra = {label: n - once.get(label, 0) for label, n in twice.items()
             if not label.startswith("GET ") and n > once.get(label, 0)}
    return ", ".join(f"{label} +{n}" for label, n in sorted(extra.items(), key=lambda x: -x[1]))


def _merge(into: Outcome, part: Outcome, prefix: str) -> None:
    for name in ("lost", "duplicated", "wrong", "resubscribed", "secrets_found",
                 "failed_runs", "unexercised"):
        setattr(into, name, getattr(into, name) + getattr(part, name))
    into.notes += [prefix + note for note in part.notes]


def _unused(stage: Stage, rng: random.Random) -> None:
    raise AssertionError("custom cases play themselves")


PARALLEL = [
    Case("parallel: two companies' jobs side by side", "parallel", _unused,
         custom=two_companies),
    Case("parallel: the same job started twice, 1–3 s apart", "parallel", _unused,
         custom=doubled_job),
    Case("parallel: the same job started again while the first writes", "parallel", _unused,
         custom=partial(doubled_job, interleaved=True)),
]
