"""The fleet benchmark (issue 10): `bench/fleet.py [--tenants 20 --accounts 1000]`.

N tenants, each its own Exact company (a sandbox process seeded differently, Exact's real
per-company limits on) and its own Mailchimp account (a sandbox process), run through Dagster
exactly as a fleet runs: `dagster dev` (webserver, daemon, code server) on the project with
`fleet/dagster.yaml` (the queued run coordinator: 2 runs at a time, 1 per tenant); every
tenant's `exactonline-to-mailchimp` job is submitted at once through Dagster's GraphQL API and
the queue works them off, each run in its own run-worker process starting the tenant's
`meltano run`. Measured: total time (first submit to last run done), each tenant's run time
(Dagster's start to end) and its wait in the queue, the most runs seen at once, peak RSS per
process kind (psutil, every 0.5 s) and of everything at once, calls per side; then every
audience is compared with what its own Exact company says it must hold (so no tenant's data
reached another's audience). Writes `bench/results/fleet.json` and `fleet.md`; `--readme`
puts the table into the README's fleet section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path[:0] = [str(Path(__file__).resolve().parent),
                str(Path(__file__).resolve().parent.parent / "tests")]
import e2e_expectation as expectation  # noqa: E402
from e2e_pipeline import make_project  # noqa: E402
from exactmc_fleet.registry import Tenant, TenantRegistry  # noqa: E402
from scale_measure import (  # noqa: E402
    BIN,
    ROOT,
    Sampler,
    Sandbox,
    free_port,
    start_sandbox,
)
from secret_store import SecretStore, generate_key  # noqa: E402

JOB = "exactonline-to-mailchimp"
DIVISIONS = 3
LIST_ID = "fleet"
RESULTS = ROOT / "bench" / "results"
# A process's kind by its command line (plugins first: their venv paths name them).
KINDS = (("mapper-exact-mailchimp", "mapper"), ("tap-exactonline", "tap"),
         ("target-mailchimp", "target"), ("resource_tracker", "other"),
         # The code server runs each launched run in a spawned child: the run worker.
         ("multiprocessing.spawn", "dagster run worker"), ("execute_run", "dagster run worker"),
         ("api grpc", "dagster code server"), ("code-server start", "dagster code server"),
         # The run worker's stdout/stderr capture for the UI (tail -F) and its orphan watch.
         ("watch_orphans", "dagster log capture"), ("tail -F", "dagster log capture"),
         ("dagster-daemon", "dagster daemon"),
         ("dagster._daemon", "dagster daemon"), ("dagster-webserver", "dagster webserver"),
         ("dagster_webserver", "dagster webserver"), ("dagster dev", "dagster dev"),
         ("meltano", "meltano"))
README_BEGIN = "<!-- fleet-bench:begin -->"
README_END = "<!-- fleet-bench:end -->"


def kind_of(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    return next((kind for needle, kind in KINDS if needle in text), "other")


class RemoteExact:
    """What `e2e_expectation.expected_state` reads, from a sandbox process's control API."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box

    def rows(self, entity: str, division: int | None = None) -> list[dict[str, Any]]:
        params = {"division": division} if division is not None else {}
        return self.box.control("GET", f"data/{entity}", params=params)


@dataclass
class FleetTenant:
    name: str
    exact: Sandbox
    mailchimp: Sandbox
    client_id: str

    def members(self) -> dict[str, str]:
        dump = self.mailchimp.control("GET", f"lists/{LIST_ID}/members")
        return {m["email_address"]: m["status"] for m in dump["members"]
                if m["status"] != "archived"}

    def orders(self) -> dict[str, str]:
        try:
            store = self.mailchimp.control("GET", "ecommerce/stores/exact-online")
        except requests.HTTPError:
            return {}
        return {order["id"]: order["financial_status"] for order in store["orders"]}

    def calls(self) -> tuple[int, int]:
        return (self.exact.control("GET", "calls")["total"],
                self.mailchimp.control("GET", "calls")["total"])


class Monitor(Sampler):
    """Peak RSS per process kind and of everything at once; the most `meltano run`s at once."""

    def __init__(self, root_pid: int, sandboxes: list[Sandbox],
                 database_url: str | None = None) -> None:
        super().__init__()
        self.root_pid = root_pid
        self.sandboxes = sandboxes
        self.most_connections = 0
        self.others: set[str] = set()
        self._engine = None
        if database_url:
            import sqlalchemy as sa

            self._engine = sa.create_engine(database_url, poolclass=sa.pool.StaticPool)
            self._count = sa.text("SELECT count(*) - 1 FROM pg_stat_activity "
                                  "WHERE datname = current_database()")
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.most_meltano = 0

    def sample(self) -> None:
        if self._engine is not None:  # PostgreSQL connections of the runs (this one not)
            with self._engine.connect() as connection:
                self.most_connections = max(self.most_connections,
                                            connection.execute(self._count).scalar_one())
        by_kind: dict[str, list[int]] = {}
        for box in self.sandboxes:
            with contextlib.suppress(psutil.Error):
                by_kind.setdefault(f"sandbox {box.name}", []).append(
                    box.process.memory_info().rss)
        try:
            root = psutil.Process(self.root_pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            processes = []
        for process in processes:
            try:
                with process.oneshot():
                    cmdline = process.cmdline()
                    kind, rss = kind_of(cmdline), process.memory_info().rss
            except psutil.Error:
                continue
            if kind == "other" and rss and cmdline:
                self.others.add(" ".join(cmdline)[:160])
            if rss:  # a zombie has none
                by_kind.setdefault(kind, []).append(rss)
        for kind, values in by_kind.items():
            self.peak[kind] = max(self.peak.get(kind, 0), max(values))
        self.peak_total = max(self.peak_total, sum(sum(v) for v in by_kind.values()))
        self.most_meltano = max(self.most_meltano, len(by_kind.get("meltano", [])))


class Dagster:
    """`dagster dev` on the bench's project, and its GraphQL API."""

    def __init__(self, project: Path, home: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "fleet" / "dagster.yaml", home / "dagster.yaml")
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [str(BIN / "dagster"), "dev", "-w", str(ROOT / "fleet" / "workspace.yaml"),
                 "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=project, env={**env, "DAGSTER_HOME": str(home)}, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        response = requests.post(self.url, json={"query": text, "variables": variables},
                                 timeout=120)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def wait_loaded(self, jobs: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise SystemExit(f"dagster dev exited ({self.popen.returncode})")
            with contextlib.suppress(requests.RequestException, RuntimeError, KeyError):
                data = self.query("{ repositoriesOrError { ... on RepositoryConnection {"
                                  " nodes { name jobs { name } } } } }")
                nodes = data["repositoriesOrError"]["nodes"]
                if nodes and len(nodes[0]["jobs"]) >= jobs:
                    return
            time.sleep(1)
        raise SystemExit("dagster dev did not load the fleet's code location in time")

    def submit(self, job: str) -> str:
        data = self.query(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {"
            " __typename ... on LaunchRunSuccess { run { runId } }"
            " ... on PythonError { message } ... on Error { message } } }",
            p={"selector": {"repositoryLocationName": "exactmc-fleet",
                            "repositoryName": "__repository__", "jobName": job},
               "runConfigData": {}})
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"{job}: {result}")
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict[str, Any]:
        return self.query(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run {"
            " status creationTime startTime endTime tags { key value } } } }",
            id=run_id)["runOrError"]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, 15)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, 9)
            self.popen.wait()


def start_tenants(count: int, accounts: int, workdir: Path) -> list[FleetTenant]:
    per_division = max(1, accounts // DIVISIONS)

    def start(index: int) -> FleetTenant:
        name = f"t{index:03d}"
        client_id = f"fleet-{name}"
        exact = start_sandbox("exact", [
            "--seed", str(1000 + index), "--accounts-per-division", str(per_division),
            "--client-id", client_id], {"EXACT_SANDBOX_CLIENT_SECRET": client_id + "-secret"},
            workdir / f"sandbox-exact-{name}.log")
        exact.name = "exact"
        key_file = workdir / f"{name}.key"
        mailchimp = start_sandbox("mailchimp", ["--api-key-file", str(key_file),
                                                "--list-id", LIST_ID], {},
                                  workdir / f"sandbox-mailchimp-{name}.log")
        return FleetTenant(name, exact, mailchimp, client_id)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(start, range(1, count + 1)))


def register(tenants: list[FleetTenant], project: Path, workdir: Path, key: str,
             database_url: str | None) -> None:
    """What `exactmc-tenants add` records and stores (where the runs will look: the fleet's
    database when there is one, else the project's files)."""
    registry = TenantRegistry(database_url or
                              f"sqlite:///{project / '.meltano' / 'fleet' / 'tenants.sqlite'}")
    for tenant in tenants:
        registry.add(Tenant(tenant.name, tenant.client_id, list_id=LIST_ID, settings={
            "TAP_EXACTONLINE_BASE_URL": f"{tenant.exact.url}/nl",
            "TARGET_MAILCHIMP_BASE_URL": f"{tenant.mailchimp.url}/3.0",
            "TARGET_MAILCHIMP_LOGIN_URL": tenant.mailchimp.url}))
        grant = tenant.exact.control("POST", "oauth/grant",
                                     json={"client_id": tenant.client_id, "region": "nl"})
        store = SecretStore(database_url or project / ".secrets", key, tenant=tenant.name)
        store.write(f"exactonline-{tenant.client_id}-credentials", {
            "client_secret": tenant.client_id + "-secret",
            "refresh_token": grant["refresh_token"]})
        key_file = workdir / f"{tenant.name}.key"
        store.write("mailchimp", {"api_key": key_file.read_text().strip()})
        key_file.unlink()


def base_env(project: Path, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TAP_", "TARGET_", "MAPPER_", "MELTANO_", "EXACTMC_",
                                "DAGSTER_"))}
    return {**env, "SECRET_STORE_KEY": key, "EXACTMC_PROJECT_ROOT": str(project),
            "MELTANO_ENVIRONMENT": "dev", "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "PATH": f"{BIN}:{env.get('PATH', '')}"}


def run_all(dagster: Dagster, tenants: list[FleetTenant],
            timeout: float) -> tuple[float, dict[str, dict[str, Any]]]:
    """Submit every tenant's job at once; wait until all are done. (submit time, runs)."""
    submitted = time.time()
    run_ids = {t.name: dagster.submit(f"{t.name}__{JOB.replace('-', '_')}") for t in tenants}
    deadline = time.monotonic() + timeout
    runs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        runs = {name: dagster.run(run_id) for name, run_id in run_ids.items()}
        if all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs.values()):
            break
        time.sleep(2)
    return submitted, runs


def pass_figures(runs: dict[str, dict[str, Any]], submitted: float,
                 calls: dict[str, tuple[int, int]]) -> dict[str, Any]:
    seconds = sorted(r["endTime"] - r["startTime"] for r in runs.values()
                     if r.get("startTime") and r.get("endTime"))
    ends = [r["endTime"] for r in runs.values() if r.get("endTime")]
    return {
        "total_seconds": round(max(ends) - submitted, 1) if ends else None,
        "runs_succeeded": sum(r["status"] == "SUCCESS" for r in runs.values()),
        "median_run_seconds": round(seconds[len(seconds) // 2], 1) if seconds else None,
        "slowest_run_seconds": round(seconds[-1], 1) if seconds else None,
        "exact_calls_per_run": sorted(c[0] for c in calls.values())[len(calls) // 2],
        "mailchimp_calls_per_run": sorted(c[1] for c in calls.values())[len(calls) // 2],
    }


def iso_seconds(value: float | None, origin: float) -> float | None:
    return None if value is None else round(value - origin, 1)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workdir = (ROOT / "output" / "bench-fleet").resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    os.chmod(workdir, 0o700)
    project = make_project(workdir / "project")
    key = generate_key()
    env = base_env(project, key)
    server = None
    if args.database == "postgres":  # the fleet's one database: every store and Meltano's
        from secret_store.pytest_postgres import PostgresServer, _binaries

        server = PostgresServer(_binaries())
        server.start()
        env["EXACTMC_DATABASE_URL"] = os.environ["EXACTMC_DATABASE_URL"] = (
            server.create_database())
    print(f"starting {args.tenants} x 2 sandboxes ({args.accounts} accounts each) ...",
          flush=True)
    setup_started = time.monotonic()
    tenants = start_tenants(args.tenants, args.accounts, workdir)
    register(tenants, project, workdir, key, env.get("EXACTMC_DATABASE_URL"))
    boxes = [box for t in tenants for box in (t.exact, t.mailchimp)]
    dagster = Dagster(project, workdir / "dagster-home", env, workdir / "dagster.log")
    results: dict[str, Any] = {}
    try:
        dagster.wait_loaded(jobs=3 * len(tenants))
        setup_seconds = time.monotonic() - setup_started
        print(f"set up in {setup_seconds:.0f} s; submitting {len(tenants)} runs", flush=True)
        with Monitor(dagster.popen.pid, boxes, env.get("EXACTMC_DATABASE_URL")) as monitor:
            submitted, runs = run_all(dagster, tenants, args.timeout)
        calls_first = {t.name: t.calls() for t in tenants}
        incremental = None
        if not args.no_incremental:  # the same again, nothing changed: the steady state
            print("first syncs done; the incremental pass", flush=True)
            again_at, again = run_all(dagster, tenants, args.timeout)
            incremental = pass_figures(again, again_at, {
                t.name: tuple(after - before for after, before in zip(
                    t.calls(), calls_first[t.name], strict=True)) for t in tenants})
        results = report(args, tenants, runs, submitted, monitor, setup_seconds, calls_first)
        results["incremental"] = incremental
    finally:
        dagster.stop()
        for box in boxes:
            box.stop()
        if server is not None:
            server.stop()
    return results


def report(args: argparse.Namespace, tenants: list[FleetTenant], runs: dict[str, Any],
           submitted: float, monitor: Monitor, setup_seconds: float,
           calls: dict[str, tuple[int, int]]) -> dict[str, Any]:
    per_tenant = {}
    intervals = []
    for tenant in tenants:
        run = runs[tenant.name]
        start, end = run.get("startTime"), run.get("endTime")
        expected = expectation.expected_state(RemoteExact(tenant.exact))
        members, orders = tenant.members(), tenant.orders()
        exact_calls, mailchimp_calls = calls[tenant.name]  # of the first sync
        per_tenant[tenant.name] = {
            "status": run["status"],
            "queued_seconds": iso_seconds(start, submitted),
            "run_seconds": round(end - start, 1) if start and end else None,
            "members": len(members), "orders": len(orders),
            "audience_exactly_its_own": members == expected.members,
            # Emails its own company does not hold (another tenant's data would show here).
            "foreign_emails": len(set(members) - set(expected.members)),
            "orders_exactly_its_own": orders == expected.orders,
            "exact_calls": exact_calls, "mailchimp_calls": mailchimp_calls,
        }
        if start and end:
            intervals.append((start, end))
    ends = [end for _, end in intervals]
    most_at_once = max((sum(1 for s, e in intervals if s <= start < e)
                        for start, _ in intervals), default=0)
    slowest = max(per_tenant.items(), key=lambda item: item[1]["run_seconds"] or 0)
    ok = [t for t in per_tenant.values() if t["status"] == "SUCCESS"]
    return {
        "command": " ".join(["bench/fleet.py", *sys.argv[1:]]),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "tenants": args.tenants, "accounts_per_tenant": args.accounts,
        "engine": "dagster dev (webserver, daemon, code server); QueuedRunCoordinator "
                  "max_concurrent_runs 2, tag tenant limit 1 (fleet/dagster.yaml); "
                  "DefaultRunLauncher: a run worker process per run",
        "setup_seconds": round(setup_seconds, 1),
        "total_seconds": round(max(ends) - submitted, 1) if ends else None,
        "runs_succeeded": len(ok),
        "slowest_tenant": {"name": slowest[0], "run_seconds": slowest[1]["run_seconds"]},
        "median_run_seconds": sorted(t["run_seconds"] or 0 for t in per_tenant.values())[
            len(per_tenant) // 2],
        "most_runs_at_once": most_at_once,
        "median_exact_calls": sorted(t["exact_calls"] for t in per_tenant.values())[
            len(per_tenant) // 2],
        "median_mailchimp_calls": sorted(t["mailchimp_calls"] for t in per_tenant.values())[
            len(per_tenant) // 2],
        "most_meltano_processes_at_once": monitor.most_meltano,
        "database": args.database,
        "most_database_connections_at_once": monitor.most_connections if args.database
        == "postgres" else None,
        "peak_rss_mb": {k: round(v / 2**20) for k, v in sorted(monitor.peak.items())},
        "peak_rss_total_mb": round(monitor.peak_total / 2**20),
        "other_processes": sorted(monitor.others),
        "isolation": {
            "audiences_exactly_their_own": sum(t["audience_exactly_its_own"]
                                               for t in per_tenant.values()),
            "orders_exactly_their_own": sum(t["orders_exactly_its_own"]
                                            for t in per_tenant.values()),
            "foreign_emails": sum(t["foreign_emails"] for t in per_tenant.values()),
        },
        "per_tenant": per_tenant,
    }


def markdown(result: dict[str, Any]) -> str:
    iso = result["isolation"]
    rss = result["peak_rss_mb"]
    kinds = ", ".join(f"{k} {v}" for k, v in rss.items())
    lines = [
        f"Fleet benchmark ({result['measured_at']}, `{result['command']}`, "
        f"{result['machine']}): {result['tenants']} tenants × "
        f"{result['accounts_per_tenant']:,} accounts, each its own Exact and Mailchimp "
        "sandbox process, every tenant's first sync submitted at once to Dagster "
        f"(2 runs at a time, 1 per tenant); the tenants' state on {result['database']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| total (first submit → last run done) | {result['total_seconds']} s |",
        f"| runs succeeded | {result['runs_succeeded']} / {result['tenants']} |",
        f"| slowest tenant's run | {result['slowest_tenant']['run_seconds']} s "
        f"({result['slowest_tenant']['name']}) |",
        f"| median run | {result['median_run_seconds']} s |",
        f"| most runs at once (Dagster's start/end times) | {result['most_runs_at_once']} |",
        f"| peak RSS, everything at once | {result['peak_rss_total_mb']} MB |",
        f"| peak RSS per process (MB) | {kinds} |",
        f"| audiences holding exactly their own company's members / orders | "
        f"{iso['audiences_exactly_their_own']} / {iso['orders_exactly_their_own']} of "
        f"{result['tenants']} |",
        f"| emails in an audience that its own company does not hold | "
        f"{iso['foreign_emails']} |",
    ]
    again = result.get("incremental")
    if again:
        lines += [
            f"| incremental pass, nothing changed: total / median run / slowest run | "
            f"{again['total_seconds']} s / {again['median_run_seconds']} s / "
            f"{again['slowest_run_seconds']} s ({again['runs_succeeded']} succeeded) |",
            f"| calls per tenant, first sync / incremental (median): Exact | "
            f"{result['median_exact_calls']} / {again['exact_calls_per_run']} |",
            f"| calls per tenant, first sync / incremental (median): Mailchimp | "
            f"{result['median_mailchimp_calls']} / {again['mailchimp_calls_per_run']} |",
        ]
    if result.get("most_database_connections_at_once") is not None:
        lines.append(f"| PostgreSQL connections at once (all runs; Dagster's own storage "
                     f"not included) | {result['most_database_connections_at_once']} |")
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], readme: bool) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if result["database"] == "sqlite" else "-postgres"
    (RESULTS / f"fleet{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / f"fleet{suffix}.md").write_text(table)
    if suffix:
        return
    if readme:
        path = ROOT / "README.md"
        text = path.read_text()
        if README_BEGIN in text and README_END in text:
            head, rest = text.split(README_BEGIN, 1)
            _, tail = rest.split(README_END, 1)
            path.write_text(f"{head}{README_BEGIN}\n{table}{README_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=1000, help="per tenant")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                        help="the tenants' state: SQLite files (default) or one PostgreSQL "
                             "database started here (EXACTMC_DATABASE_URL)")
    parser.add_argument("--no-incremental", action="store_true",
                        help="only the first syncs (no second pass with nothing changed)")
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only (a smoke run)")
    args = parser.parse_args(argv)
    result = measure(args)
    print(markdown(result))
    print("processes of kind 'other':", *result["other_processes"], sep="\n  ")
    if not args.no_write:
        write(result, args.readme)
    failed = result["runs_succeeded"] != args.tenants or result["isolation"][
        "audiences_exactly_their_own"] != args.tenants
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
