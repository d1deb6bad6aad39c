"""The scale benchmark (issue 9): `bench/run [--sizes 10k,30k,100k]`.

For each size (accounts over 3 divisions) it seeds both sandboxes as processes, Exact's rate
limits off, and measures
- end to end: the first sync (`meltano run exactonline-to-mailchimp`), then an incremental
  with 10 changes in Exact and an empty incremental (wall, CPU, calls per side, peak RSS of
  meltano, each plugin and each sandbox, the sandboxes' share of the CPU);
- each stage alone on captured input (the tap to a file, the mapper on that file, the target on
  the mapper's output into a fresh audience) against the floor, plain `json.loads` +
  `json.dumps` of the same lines (wall, CPU, records/s, × floor, peak RSS);
- the first sync modelled under the real limits from the measured counts (scale_report.py).
It writes `bench/results/scale.json` (sizes measured earlier are kept unless measured again)
and `bench/results/scale.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet
from scale_measure import (
    BIN,
    ROOT,
    Sandbox,
    Timed,
    TreeRun,
    least,
    run_timed,
    run_tree,
    start_sandbox,
)
from scale_report import (
    MB,
    markdown,
    model_real_limits,
    per_thousand,
    stage_figures,
    with_table,
)
from secret_store import SecretStore

JOB = "exactonline-to-mailchimp"
DIVISIONS = 3
CLIENT_ID = "bench-scale"
LIST_ID = "bench"
UNLIMITED = str(10**9)  # Exact's minutely and daily limits, "off"
RESULTS = ROOT / "bench" / "results"
PLUGIN_BINS = {
    "tap": ROOT / ".meltano/extractors/tap-exactonline/venv/bin/tap-exactonline",
    "mapper": ROOT / ".meltano/mappers/mapper-exact-mailchimp/venv/bin/mapper-exact-mailchimp",
    "target": ROOT / ".meltano/loaders/target-mailchimp/venv/bin/target-mailchimp",
}
FLOOR = ("import json, sys\n"
         "write = sys.stdout.write\n"
         "for line in sys.stdin:\n"
         "    write(json.dumps(json.loads(line)) + '\\n')\n")


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "").replace(",", "")
    return int(float(text[:-1]) * 1000) if text.endswith("k") else int(text)


class Bench:
    """One size: its sandboxes, Meltano environment and work dir."""

    def __init__(self, accounts: int, workdir: Path, timeout: float,
                 profile: bool = False, repeat: int = 1) -> None:
        self.profile = profile
        self.repeat = 1 if profile else repeat  # a profile is of one run
        self.accounts = accounts
        self.per_division = max(1, accounts // DIVISIONS)
        self.workdir = workdir
        self.timeout = timeout
        self.log = workdir / "bench.log"
        self.boxes: list[Sandbox] = []

    # -- setup ------------------------------------------------------------------------------
    def start(self) -> None:
        client_secret = secrets.token_urlsafe(24)
        self.exact = self._start("exact", [
            "--seed", "42", "--accounts-per-division", str(self.per_division),
            "--client-id", CLIENT_ID, "--minutely-limit", UNLIMITED, "--daily-limit", UNLIMITED,
        ], {"EXACT_SANDBOX_CLIENT_SECRET": client_secret})
        self.mailchimp, api_key = self._start_mailchimp("mailchimp")
        grant = self.exact.control("POST", "oauth/grant", json={"client_id": CLIENT_ID,
                                                                "region": "nl"})
        store_key = Fernet.generate_key().decode()
        self.store = SecretStore(self.workdir / "secrets", store_key)
        self.store.write(f"exactonline-{CLIENT_ID}-credentials", {
            "client_secret": client_secret, "refresh_token": grant["refresh_token"]})
        self.store.write("mailchimp", {"api_key": api_key})
        self.env = self._meltano_env(store_key)

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> Sandbox:
        box = start_sandbox(name, args, env, self.workdir / f"sandbox-{name}.log")
        box.sample()  # seeded: its size before any run
        self.boxes.append(box)
        return box

    def _start_mailchimp(self, name: str) -> tuple[Sandbox, str]:
        key_file = self.workdir / f"{name}.key"  # written 0600 by the sandbox, removed at once
        box = start_sandbox("mailchimp", ["--api-key-file", str(key_file), "--list-id", LIST_ID],
                            {}, self.workdir / f"sandbox-{name}.log")
        box.name = name
        self.boxes.append(box)
        api_key = key_file.read_text().strip()
        key_file.unlink()
        return box, api_key

    def _meltano_env(self, store_key: str) -> dict[str, str]:
        sys_dir = self.workdir / ".meltano"
        sys_dir.mkdir(parents=True, exist_ok=True)
        for kind in ("extractors", "loaders", "mappers"):
            (sys_dir / kind).symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("TAP_", "TARGET_", "MAPPER_", "MELTANO_"))}
        env.update({
            "SECRET_STORE_KEY": store_key,
            "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_DATABASE_URI": f"sqlite:///{self.workdir / 'meltano.db'}",
            "MELTANO_SYS_DIR_ROOT": str(sys_dir),
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TAP_EXACTONLINE_BASE_URL": f"{self.exact.url}/nl",
            "TAP_EXACTONLINE_CLIENT_ID": CLIENT_ID,
            "TAP_EXACTONLINE_ALL_DIVISIONS": "true",
            "TAP_EXACTONLINE_TOKEN_STORE_PATH": str(self.workdir / "secrets"),
            "TAP_EXACTONLINE_WEBHOOK_INBOX_URL": f"sqlite:///{self.workdir / 'inbox.sqlite'}",
            "TARGET_MAILCHIMP_BASE_URL": f"{self.mailchimp.url}/3.0",
            "TARGET_MAILCHIMP_LOGIN_URL": self.mailchimp.url,
            "TARGET_MAILCHIMP_LIST_ID": LIST_ID,
            "TARGET_MAILCHIMP_SECRET_STORE_PATH": str(self.workdir / "secrets"),
            "TARGET_MAILCHIMP_AUDIT_STORE_URL": f"sqlite:///{self.workdir / 'audit.sqlite'}",
            "MAPPER_EXACT_MAILCHIMP_LOOKUP_STORE_PATH": str(self.workdir / "lookup.sqlite"),
        })
        return env

    def stop(self) -> None:
        for box in self.boxes:
            box.stop()

    # -- end to end ---------------------------------------------------------------------------
    def reset_calls(self) -> None:
        for box in self.boxes:
            if box.running:  # not a stage's audience, stopped once counted
                box.control("POST", "calls/reset")

    def calls(self, box: Sandbox) -> dict[str, Any]:
        snapshot = box.control("GET", "calls")
        return {"total": snapshot["total"], "by_endpoint": snapshot["by_endpoint"]}

    def run_job(self, timeout: float) -> tuple[TreeRun, dict[str, Any]]:
        self.reset_calls()
        run = run_tree([str(BIN / "meltano"), "run", "--force", JOB], self.env, self.log,
                       [self.exact, self.mailchimp], timeout)
        figures = {
            "wall_s": round(run.wall, 1), "cpu_s": round(run.cpu, 1), "finished": run.finished,
            "returncode": run.returncode,
            "cpu_s_by_process": {k: round(v, 1) for k, v in run.cpu_by_role.items()},
            "sandbox_cpu_s": {k: round(v, 1) for k, v in run.sandbox_cpu.items()},
            "peak_rss_mb": {k: round(v / MB) for k, v in run.peak_rss.items()},
            "exact_calls": self.calls(self.exact)["total"],
            "mailchimp_calls": self.calls(self.mailchimp)["total"],
            "mailchimp_by_endpoint": self.calls(self.mailchimp)["by_endpoint"],
            "exact_by_endpoint": self.calls(self.exact)["by_endpoint"],
        }
        return run, figures

    def member_count(self, box: Sandbox) -> int:
        return box.control("GET", f"lists/{LIST_ID}/count")["members"]

    def ten_changes(self) -> list[str]:
        """10 address changes of customers in division 101 (each a member's and a customer's
        change in Mailchimp when the account has a contact with an email)."""
        accounts = self.exact.control("GET", "data/Accounts", params={"division": 101})
        customers = [a for a in accounts if a.get("Status") == "C" and not a.get("Blocked")]
        changed = []
        for number, account in enumerate(customers[:10]):
            self.exact.control("PATCH", f"data/Accounts/{account['ID']}",
                               json={"AddressLine1": f"Benchstraat {number + 1}"})
            changed.append(account["ID"])
        return changed

    # -- stages alone ---------------------------------------------------------------------------
    def dump_config(self, plugin: str, **overrides: Any) -> Path:
        import subprocess

        done = subprocess.run([str(BIN / "meltano"), "invoke", "--dump=config", plugin],
                              cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=120, check=True)
        config = {**json.loads(done.stdout[done.stdout.index("{"):]), **overrides}
        path = self.workdir / f"{plugin}.config.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(config, handle)
        return path

    def stage_command(self, name: str, config: Path) -> list[str]:
        """The plugin's own executable; under cProfile (its venv's Python) with --profile."""
        executable = PLUGIN_BINS[name]
        command = [str(executable), "--config", str(config)]
        if not self.profile:
            return command
        profile = self.workdir / f"stage-{name}.prof"
        return [str(executable.parent / "python"), "-m", "cProfile", "-o", str(profile),
                *command]

    def stages(self) -> tuple[dict[str, Any], dict[str, Any]]:
        tap_out, mapped = self.workdir / "tap.jsonl", self.workdir / "mapped.jsonl"
        lookup, audit = self.workdir / "stage-lookup.sqlite", self.workdir / "stage-audit.sqlite"
        tap_config = self.dump_config("tap-exactonline")
        mapper_config = self.dump_config("exact-to-mailchimp", lookup_store_path=str(lookup))
        floor_script = self.workdir / "floor.py"
        floor_script.write_text(FLOOR)
        runs: dict[str, list[Timed]] = {}
        extra: dict[str, Any] = {}
        members_alone: list[int] = []
        # Rounds of every stage rather than one stage `repeat` times in a row, so a slow spell
        # of the shared host falls on all of them alike; each figure is the least of its runs.
        for _ in range(self.repeat):
            self.reset_calls()
            runs.setdefault("tap", []).append(run_timed(
                self.stage_command("tap", tap_config), None, tap_out,
                self.workdir / "stage-tap.log", self.env, self.timeout))
            extra.setdefault("tap_alone_exact_calls", self.calls(self.exact)["total"])
            remove_database(lookup)  # a fresh lookup store each time
            runs.setdefault("mapper", []).append(run_timed(
                self.stage_command("mapper", mapper_config), tap_out, mapped,
                self.workdir / "stage-mapper.log", self.env, self.timeout))
            target, calls, members = self._target_alone(mapped, audit)
            runs.setdefault("target", []).append(target)
            members_alone.append(members)
            extra.update(calls)
            for name, path in (("tap_output", tap_out), ("mapped", mapped)):
                runs.setdefault(f"floor ({name})", []).append(run_timed(
                    [sys.executable, str(floor_script)], path, None,
                    self.workdir / f"floor-{name}.log", self.env, self.timeout))
        for box in self.boxes:
            box.sample()
        records = {"tap": count_records(tap_out), "mapped": count_records(mapped)}
        floor_of = {"tap": "tap_output", "mapper": "tap_output", "target": "mapped",
                    "floor (tap_output)": "tap_output", "floor (mapped)": "mapped"}
        floor_cpu = {name: least(runs[f"floor ({name})"]).cpu for name in ("tap_output", "mapped")}
        figures: dict[str, Any] = {}
        for name, timed in runs.items():
            best = least(timed)
            lines = records["mapped"] if floor_of[name] == "mapped" else records["tap"]
            figures[name] = stage_figures(lines, best.wall, best.cpu, best.peak_rss,
                                          floor_cpu[floor_of[name]], [t.cpu for t in timed])
            figures[name]["returncode"] = best.returncode
            if self.profile and name in PLUGIN_BINS:
                figures[name]["profile"] = profile_summary(self.workdir / f"stage-{name}.prof")
        extra.update({"rows_read": records["tap"], "outputs": records["mapped"],
                      # The target alone must build the audience the whole job built, each time
                      # (rounds that disagree are all listed).
                      "members_end_to_end": self.member_count(self.mailchimp),
                      "members_target_alone": members_alone[0] if len(set(members_alone)) == 1
                      else members_alone})
        return figures, extra

    def _target_alone(self, mapped: Path, audit: Path) -> tuple[Timed, dict[str, Any], int]:
        """The target on the mapper's output into a fresh audience (a sandbox of its own, and
        a fresh audit trail), as on a first sync: its run, its calls and the members it made
        (that sandbox is stopped once counted)."""
        fresh, api_key = self._start_mailchimp("mailchimp-stage")
        self.store.write("mailchimp", {"api_key": api_key})
        remove_database(audit)
        config = self.dump_config(
            "target-mailchimp", base_url=f"{fresh.url}/3.0", login_url=fresh.url,
            audit_store_url=f"sqlite:///{audit}")
        run = run_timed(self.stage_command("target", config), mapped, None,
                        self.workdir / "stage-target.log", self.env, self.timeout)
        calls = self.calls(fresh)
        members = self.member_count(fresh)
        fresh.sample()
        fresh.stop()
        return run, {"target_alone_mailchimp_calls": calls["total"],
                     "target_alone_members_gets": members_gets(calls["by_endpoint"])}, members


def remove_database(path: Path) -> None:
    """A SQLite file with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def profile_summary(path: Path, top: int = 12) -> dict[str, Any]:
    """Function calls in all and the functions with the most own time (cProfile)."""
    import pstats

    stats = pstats.Stats(str(path))
    table = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "total_calls": stats.total_calls,  # type: ignore[attr-defined]
        "top_own_time": [
            {"function": f"{Path(file).name}:{line}({function})", "calls": calls,
             "own_s": round(own, 2), "cumulative_s": round(cumulative, 2)}
            for (file, line, function), (_, calls, own, cumulative, _) in rows],
    }


def count_records(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.startswith(b'{"type":"RECORD"')
                   or b'"type": "RECORD"' in line[:40] or b'"type":"RECORD"' in line[:40])


def members_gets(by_endpoint: dict[str, int]) -> int:
    return sum(n for label, n in by_endpoint.items()
               if label.startswith("GET ") and "/members" in label)


def bench_size(accounts: int, workdir: Path, timeout: float, stages: bool = True,
               profile: bool = False, repeat: int = 1) -> dict[str, Any]:
    """Everything measured for one size; a first sync that does not finish in `timeout` is
    recorded as such (and the rest skipped)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, mode=0o700)
    bench = Bench(accounts, workdir, timeout, profile, repeat)
    result: dict[str, Any] = {"accounts": accounts, "divisions": DIVISIONS,
                              "accounts_per_division": bench.per_division,
                              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        print(f"[{accounts:,}] seeding the sandboxes…", flush=True)
        started = time.monotonic()
        bench.start()
        result["seed_s"] = round(time.monotonic() - started, 1)
        print(f"[{accounts:,}] first sync…", flush=True)
        run, first = bench.run_job(timeout)
        e2e = result["end_to_end"] = {"first_sync": first}
        sandbox_cpu = sum(run.sandbox_cpu.values())
        result["sandbox_cpu_share_pct"] = round(100 * sandbox_cpu / (sandbox_cpu + run.cpu), 1) \
            if run.cpu + sandbox_cpu else None
        if not run.finished or run.returncode != 0:
            result["note"] = (f"first sync did not finish in {timeout:.0f} s" if not run.finished
                              else f"first sync failed (exit {run.returncode}); {bench.log}")
            print(f"[{accounts:,}] {result['note']}", flush=True)
            return result
        print(f"[{accounts:,}] first sync {run.wall:.0f} s; incremental with 10 changes…",
              flush=True)
        result["changed_accounts"] = len(bench.ten_changes())
        _, e2e["incremental_10"] = bench.run_job(timeout)
        print(f"[{accounts:,}] empty incremental…", flush=True)
        _, e2e["incremental_empty"] = bench.run_job(timeout)
        if stages:
            print(f"[{accounts:,}] each stage alone…", flush=True)
            result["stages"], extra = bench.stages()
        else:
            extra = {}
        result["sandbox_peak_rss_mb"] = {box.name: round(box.peak_rss / MB) for box in bench.boxes}
        rows, outputs = extra.get("rows_read"), extra.get("outputs")
        result["calls"] = {
            **extra,
            "exact_first_sync": first["exact_calls"],
            "exact_per_1k_rows": per_thousand(first["exact_calls"], rows or 0),
            "mailchimp_first_sync": first["mailchimp_calls"],
            "mailchimp_per_1k_outputs": per_thousand(first["mailchimp_calls"], outputs or 0),
            "mailchimp_members_get_share": round(
                members_gets(first["mailchimp_by_endpoint"]) / first["mailchimp_calls"], 3)
            if first["mailchimp_calls"] else None,
            "exact_empty_incremental": e2e["incremental_empty"]["exact_calls"],
        }
        result["model"] = model_real_limits(accounts, first["exact_calls"],
                                            first["mailchimp_calls"], first["cpu_s"])
        return result
    finally:
        for box in bench.boxes:
            box.sample()
        result.setdefault("sandbox_peak_rss_mb", {box.name: round(box.peak_rss / MB)
                                                  for box in bench.boxes})
        bench.stop()


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python" \
           f" {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k,30k,100k",
                        help="accounts over 3 divisions, comma-separated (default 10k,30k,100k)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds each run may take before it is recorded as unfinished")
    parser.add_argument("--results", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--workdir", type=Path, default=ROOT / "output" / "bench-scale")
    parser.add_argument("--no-stages", action="store_true", help="end to end only")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each stage alone (and of the floor); the table shows the"
                             " least CPU of them, the JSON every run (default 3)")
    parser.add_argument("--profile", action="store_true",
                        help="each stage alone under cProfile (slower: for where the time goes,"
                             " not for the table)")
    parser.add_argument("--readme", action="store_true",
                        help="also put the table into README.md's performance section")
    args = parser.parse_args(argv)
    os.umask(0o077)  # what Meltano and the plugins write stays private
    results_path: Path = args.results
    if args.profile and results_path == RESULTS / "scale.json":
        results_path = args.workdir / "scale-profile.json"  # profiled CPU is not the table's
    results = json.loads(results_path.read_text()) if results_path.exists() else {"sizes": {}}
    results["command"] = "bench/run " + " ".join(argv if argv is not None else sys.argv[1:])
    results["machine"] = machine()
    for size in (parse_size(s) for s in args.sizes.split(",") if s.strip()):
        measured = bench_size(size, args.workdir.resolve() / str(size), args.timeout,
                              stages=not args.no_stages, profile=args.profile,
                              repeat=args.repeat)
        measured["command"] = results["command"]
        results["sizes"][str(size)] = measured
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        results_path.with_suffix(".md").write_text(markdown(results))
    print(results_path.with_suffix(".md").read_text())
    if args.readme:
        readme = ROOT / "README.md"
        readme.write_text(with_table(readme.read_text(), markdown(results)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except requests.RequestException as exc:
        sys.exit(f"A sandbox did not answer: {exc}")
