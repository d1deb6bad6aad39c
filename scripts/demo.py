"""The main job, end to end against the sandboxes, with a summary people can read at a glance.

Starts both simulators with a seeded company, authorizes the tap through the real OAuth
authorization-code flow, stores the Exact client secret and the Mailchimp key in the encrypted
secret store, runs the Meltano job (killed midway on purpose, then run again), changes data in
Exact, runs it again incrementally, and prints what happened. After the kill and at the end it
checks that no secret reached any file.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from demo_webhooks import (
    Boxes,
    Change,
    Service,
    WayBack,
    make_changes,
    pick_member,
    register_mailchimp,
    subscribe_exact,
    time_changes,
    unsubscribe_one,
    way_back_env,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
JOB = "exactonline-to-mailchimp"
STORE_ID = "exact-online"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"The sandbox at {url} exited early (code {process.returncode}).")
        try:
            requests.get(f"{url}/_sandbox/calls", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"The sandbox at {url} did not come up within {timeout:.0f} s.")


@dataclass
class Sandboxes:
    exact_url: str
    mailchimp_url: str
    client_id: str
    client_secret: str
    api_key: str
    list_id: str
    webhook_secret: str  # Exact's, signing its webhook deliveries

    def exact(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.exact_url}/_sandbox/{path}"
        response = requests.request(method, url, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def mailchimp(self, path: str) -> Any:
        response = requests.get(f"{self.mailchimp_url}/_sandbox/{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def members(self) -> list[dict[str, Any]]:
        return self.mailchimp(f"lists/{self.list_id}/members")["members"]

    def member_count(self) -> int:
        """Cheap (no member list): the progress line polls it every 5 s."""
        return self.mailchimp(f"lists/{self.list_id}/count")["members"]

    def orders(self) -> list[dict[str, Any]]:
        try:
            return self.mailchimp(f"ecommerce/stores/{STORE_ID}").get("orders", [])
        except requests.HTTPError:
            return []

    def call_totals(self) -> tuple[int, int]:
        return self.exact("GET", "calls")["total"], self.mailchimp("calls")["total"]


@dataclass
class RunReport:
    name: str
    seconds: float = 0.0
    exact_calls: int = 0
    mailchimp_calls: int = 0
    created: int = 0
    updated: int = 0
    archived: int = 0
    orders_created: int = 0
    orders_changed: int = 0
    orders: Counter[str] = field(default_factory=Counter)


def start_sandboxes(stack: ExitStack, args: argparse.Namespace, logs: Path) -> Sandboxes:
    """Both simulators as processes; their secrets never appear on a command line (`ps`)."""
    exact_port, mailchimp_port = free_port(), free_port()
    key_file = logs / "sandbox-api-key"  # written by the Mailchimp sandbox, mode 0600
    client_id, client_secret = f"demo-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    webhook_secret = secrets.token_urlsafe(24)
    list_id = secrets.token_hex(5)
    commands = {
        "exact": (
            [str(BIN / "exactmc-sandbox"), "exact", "--port", str(exact_port),
             "--seed", str(args.seed), "--accounts-per-division", str(args.accounts_per_division),
             "--client-id", client_id],
            {"EXACT_SANDBOX_CLIENT_SECRET": client_secret,
             "EXACT_SANDBOX_WEBHOOK_SECRET": webhook_secret},
            f"http://127.0.0.1:{exact_port}",
        ),
        "mailchimp": (
            [str(BIN / "exactmc-sandbox"), "mailchimp", "--port", str(mailchimp_port),
             "--api-key-file", str(key_file), "--list-id", list_id],
            {},
            f"http://127.0.0.1:{mailchimp_port}",
        ),
    }
    for name, (command, extra_env, url) in commands.items():
        log = stack.enter_context((logs / f"sandbox-{name}.log").open("wb"))
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **extra_env})
        stack.callback(stop_process, process)
        wait_until_up(url, process)
    api_key = key_file.read_text().strip()
    key_file.unlink()
    return Sandboxes(
        exact_url=commands["exact"][2], mailchimp_url=commands["mailchimp"][2],
        client_id=client_id, client_secret=client_secret, api_key=api_key, list_id=list_id,
        webhook_secret=webhook_secret,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def own_sys_dir(run_dir: Path) -> Path:
    """A Meltano system dir of the demo's own (run files, logs) using the project's plugin
    installations: Meltano's run files are per plugin, so other `meltano` commands in this
    project at the same time would otherwise overwrite or delete the demo's."""
    sys_dir = run_dir / ".meltano"
    sys_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("extractors", "loaders", "mappers", "utilities"):
        (sys_dir / kind).symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
    return sys_dir


def meltano_env(boxes: Sandboxes, run_dir: Path) -> dict[str, str]:
    """Settings for this demo, as environment variables (they win over meltano.yml)."""
    store_key = os.environ.get("DEMO_SECRET_STORE_KEY") or _generate_key()
    env = dict(os.environ)
    # The store's key only in the environment (read by the plugins, never a Meltano setting,
    # so never written to Meltano's run files); every other secret only in the store.
    for name in ("TAP_EXACTONLINE_CLIENT_SECRET", "TAP_EXACTONLINE_REFRESH_TOKEN",
                 "TAP_EXACTONLINE_TOKEN_STORE_KEY", "TARGET_MAILCHIMP_API_KEY",
                 "TARGET_MAILCHIMP_SECRET_STORE_KEY"):
        env.pop(name, None)
    env.update(
        {
            "SECRET_STORE_KEY": store_key,
            "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_DATABASE_URI": f"sqlite:///{run_dir / 'meltano.db'}",
            "MELTANO_SYS_DIR_ROOT": str(own_sys_dir(run_dir)),
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TAP_EXACTONLINE_BASE_URL": f"{boxes.exact_url}/nl",
            "TAP_EXACTONLINE_CLIENT_ID": boxes.client_id,
            "TAP_EXACTONLINE_ALL_DIVISIONS": "true",
            "TAP_EXACTONLINE_TOKEN_STORE_PATH": str(run_dir / "secrets"),
            "TARGET_MAILCHIMP_BASE_URL": f"{boxes.mailchimp_url}/3.0",
            "TARGET_MAILCHIMP_LOGIN_URL": boxes.mailchimp_url,
            "TARGET_MAILCHIMP_LIST_ID": boxes.list_id,
            "TARGET_MAILCHIMP_SECRET_STORE_PATH": str(run_dir / "secrets"),
            "TARGET_MAILCHIMP_AUDIT_STORE_URL": f"sqlite:///{run_dir / 'audit.sqlite'}",
            "MAPPER_EXACT_MAILCHIMP_LOOKUP_STORE_PATH": str(run_dir / "lookup.sqlite"),
            # What `target-mailchimp:status` reads, kept in the run dir like everything else.
            "TAP_EXACTONLINE_RUN_SUMMARY_PATH": str(run_dir / "tap-last-run.json"),
            "TARGET_MAILCHIMP_EXACT_RUN_SUMMARY_PATH": str(run_dir / "tap-last-run.json"),
            "TARGET_MAILCHIMP_MAPPER_STORE_URL": str(run_dir / "lookup.sqlite"),
        }
    )
    # The way back and the webhook service (demo_webhooks.py), write_exclusions on.
    env.update(way_back_env(env, run_dir, boxes.exact_url, boxes.mailchimp_url, boxes.list_id))
    return env


def _generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def meltano(args: list[str], env: dict[str, str], log: Path, stdin: str | None = None) -> None:
    with open(log, "ab") as handle:
        handle.write(f"\n$ meltano {' '.join(args)}\n".encode())
        handle.flush()
        result = subprocess.run(
            [str(BIN / "meltano"), *args], cwd=ROOT, env=env, stdout=handle,
            stderr=subprocess.STDOUT, input=stdin.encode() if stdin else None, check=False,
        )
    if result.returncode != 0:
        raise SystemExit(f"`meltano {' '.join(args)}` failed (exit {result.returncode}); see {log}")


def kill_midway(boxes: Sandboxes, env: dict[str, str], log: Path) -> bool:
    """Start the job and SIGKILL it (Meltano and its plugins) once members are arriving in
    Mailchimp; False when it finished first (a small company)."""
    with open(log, "ab") as handle:
        handle.write(f"\n$ meltano run {JOB}   # killed midway on purpose\n".encode())
        handle.flush()
        process = subprocess.Popen([str(BIN / "meltano"), "run", JOB], cwd=ROOT, env=env,
                                   stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        while process.poll() is None and not boxes.members():
            time.sleep(0.2)
        killed = process.poll() is None
        if killed:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    return killed


def run_job(name: str, boxes: Sandboxes, env: dict[str, str], log: Path,
            before_run: Callable[[], None] | None = None) -> RunReport:
    """Run the Meltano job once, printing progress while it runs; `before_run` (counted in the
    report) e.g. kills a first attempt."""
    report = RunReport(name)
    before_members = {m["email_address"]: m for m in boxes.members()}
    before_orders = {o["id"]: o.get("financial_status") for o in boxes.orders()}
    exact_before, mailchimp_before = boxes.call_totals()
    started = time.monotonic()
    done = threading.Event()

    def progress() -> None:
        while not done.wait(5):
            exact_now, mailchimp_now = boxes.call_totals()
            elapsed = time.monotonic() - started
            print(
                f"    … {elapsed:5.0f} s: {exact_now - exact_before} Exact calls,"
                f" {mailchimp_now - mailchimp_before} Mailchimp calls,"
                f" {boxes.member_count()} members in Mailchimp",
                flush=True,
            )

    watcher = threading.Thread(target=progress, daemon=True)
    watcher.start()
    try:
        if before_run:
            before_run()
        # --force: Meltano takes a killed run for a running one for 5 minutes; the plugins'
        # own locks (one run per company and audience) make skipping that check safe.
        meltano(["run", "--force", JOB], env, log)
    finally:
        done.set()
        watcher.join()
    report.seconds = time.monotonic() - started
    exact_after, mailchimp_after = boxes.call_totals()
    report.exact_calls = exact_after - exact_before
    report.mailchimp_calls = mailchimp_after - mailchimp_before
    for member in boxes.members():
        old = before_members.get(member["email_address"])
        if old is None:
            report.created += 1
        elif member["status"] == "archived" and old["status"] != "archived":
            report.archived += 1
        elif member.get("last_changed") != old.get("last_changed"):
            report.updated += 1
    orders = boxes.orders()
    report.orders = Counter(o.get("financial_status") or "none" for o in orders)
    for order in orders:
        if order["id"] not in before_orders:
            report.orders_created += 1
        elif before_orders[order["id"]] != order.get("financial_status"):
            report.orders_changed += 1
    return report


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def change_exact_data(boxes: Sandboxes) -> list[str]:
    """The day's changes in Exact: what the incremental run must carry over.

    Picks representative records: a deleted contact whose address no one else holds (else the
    other holder simply wins), a payment on an invoice of an account that has an address (else
    it has no Mailchimp order).
    """
    changes = []
    contacts = boxes.exact("GET", "data/Contacts", params={"division": 101})
    accounts = boxes.exact("GET", "data/Accounts", params={"division": 101})
    holders = Counter(
        (c.get("Email") or "").strip().lower()
        for division in (101, 102, 103)
        for c in boxes.exact("GET", "data/Contacts", params={"division": division})
    )
    with_email = [
        c for c in contacts
        if EMAIL.match((c.get("Email") or "").strip().lower()) and c.get("Account")
        and holders[c["Email"].strip().lower()] == 1 and not c.get("IsMailingExcluded")
    ]

    account = boxes.exact(
        "POST", "data/Accounts",
        json={"Division": 101, "Name": "Nieuwe Klant B.V.", "Status": "C", "City": "Utrecht",
              "AddressLine1": "Oudegracht 1", "Postcode": "3511 AA", "State": "UT",
              "Country": "NL", "Email": "inkoop@nieuweklant.nl"},
    )
    boxes.exact(
        "POST", "data/Contacts",
        json={"Division": 101, "Account": account["ID"], "FirstName": "Noor",
              "LastName": "de Vries", "Email": "noor.devries@nieuweklant.nl"},
    )
    changes.append("new customer 'Nieuwe Klant B.V.' with contact noor.devries@nieuweklant.nl")

    moved = next(a for a in accounts if a.get("Status") == "C" and not a.get("Blocked"))
    boxes.exact("PATCH", f"data/Accounts/{moved['ID']}",
                json={"AddressLine1": "Stationsplein 12", "City": "Amersfoort"})
    changes.append(f"changed address of account {moved['Name']!r}")

    reachable = {c["Account"] for c in with_email}
    receivables = boxes.exact("GET", "data/Receivables", params={"division": 101})
    open_item = next(
        r for r in receivables if not r.get("IsFullyPaid") and r.get("Account") in reachable
    )
    boxes.exact("POST", f"data/Receivables/{open_item['ID']}/pay")
    changes.append(f"payment of invoice {open_item['InvoiceNumber']}")

    gone = with_email[0]
    boxes.exact("DELETE", f"data/Contacts/{gone['ID']}")
    changes.append(f"deleted contact {gone['Email']}")

    taken = with_email[1]
    boxes.exact(
        "POST", "data/Contacts",
        json={"Division": 101, "Account": with_email[2]["Account"], "FirstName": "Sam",
              "LastName": "Jansen", "Email": taken["Email"]},
    )
    changes.append(f"email conflict: a newer contact now also uses {taken['Email']}")
    return changes


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def rejection_summary(run_dir: Path) -> Counter[str]:
    """The mapper's dead letters (table `rejections` of its store), grouped by kind (ids and
    values masked so alike ones add up)."""
    path = run_dir / "lookup.sqlite"
    reasons: Counter[str] = Counter()
    if path.exists():
        db = sqlite3.connect(path)
        try:
            rows = db.execute("SELECT stream, reason FROM rejections").fetchall()
        finally:
            db.close()
        for stream, text in rows:
            reason = UUID.sub("…", text or "unknown")
            head, _, detail = reason.partition(" (")
            if detail:  # "(empty)" or "(invalid email '…': why)": keep the kind only
                head += " (empty)" if detail.startswith("empty") else " (invalid)"
            reasons[f"{stream}: {head}"] += 1
    return reasons


def audit_summary(run_dir: Path) -> Counter[tuple[str, str, str]]:
    """What the target recorded: (stream, outcome, reason) counts for writes that were not ok."""
    path = run_dir / "audit.sqlite"
    if not path.exists():
        return Counter()
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT stream, outcome, COALESCE(reason, ''), COUNT(*) FROM audit_writes"
            " WHERE outcome != 'ok' GROUP BY 1, 2, 3"
        ).fetchall()
    return Counter({(stream, outcome, reason): n for stream, outcome, reason, n in rows})


def shown(path: Path) -> str:
    """A path as printed: relative to the project when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def scanned_roots(run_dir: Path) -> list[Path]:
    """Everything a run can write: this run's dir, Meltano's `.meltano/` (run files, logs;
    plugin virtualenvs where changed), `.env`, `output/`."""
    return [run_dir, ROOT / ".meltano", ROOT / ".env", ROOT / "output"]


def leaked_secrets(run_dir: Path, secrets_: dict[str, str], since: float) -> list[str]:
    """Every file holding a secret in any form (raw, URL-encoded, base64, JSON-escaped)."""
    from secret_store.leaks import find_secrets

    return [line.replace(str(ROOT) + "/", "")
            for line in find_secrets(scanned_roots(run_dir), secrets_, changed_since=since)]


def print_summary(boxes: Sandboxes, reports: list[RunReport], changes: list[str],
                  run_dir: Path, live: Live | None = None) -> None:
    members = boxes.members()
    statuses = Counter(m["status"] for m in members)
    tags = Counter(tag for m in members for tag in m["tags"])
    width = 26
    print("\n" + "=" * 64)
    print("Exact Online → Mailchimp: summary")
    print("=" * 64)
    header = f"{'':{width}}" + "".join(f"{r.name:>18}" for r in reports)
    print(header)
    rows = [
        ("members created", [r.created for r in reports]),
        ("members updated", [r.updated for r in reports]),
        ("members archived", [r.archived for r in reports]),
        ("orders created", [r.orders_created for r in reports]),
        ("orders changed status", [r.orders_changed for r in reports]),
        ("Exact API calls", [r.exact_calls for r in reports]),
        ("Mailchimp API calls", [r.mailchimp_calls for r in reports]),
    ]
    for label, values in rows:
        print(f"{label:{width}}" + "".join(f"{v:>18,}" for v in values))
    print(f"{'time taken':{width}}" + "".join(f"{r.seconds:>17.1f}s" for r in reports))
    print("\nMailchimp now holds")
    by_status = ", ".join(f"{n:,} {s}" for s, n in statuses.most_common())
    print(f"  {len(members):,} members: {by_status}")
    print(f"  {len(tags):,} tags on {sum(tags.values()):,} member-tag pairs"
          + (f" (largest: {tags.most_common(1)[0][0]!r})" if tags else ""))
    orders = reports[-1].orders
    print(f"  {sum(orders.values()):,} orders: "
          + ", ".join(f"{n:,} {s}" for s, n in orders.most_common()))
    rejected = rejection_summary(run_dir)
    print(f"\nRecords rejected by the mapper (not sent; {run_dir.name}/lookup.sqlite):"
          f" {sum(rejected.values()):,}")
    for reason, count in rejected.most_common():
        print(f"  {count:>6,}  {reason}")
    audited = audit_summary(run_dir)
    print("\nWrites Mailchimp refused or the target skipped (audit trail):"
          f" {sum(audited.values()):,}")
    for (stream, outcome, reason), count in audited.most_common():
        print(f"  {count:>6,}  {stream} {outcome}: {reason}")
    print("\nMailchimp calls by endpoint, all runs")
    for endpoint, count in Counter(boxes.mailchimp("calls")["by_endpoint"]).most_common(8):
        print(f"  {count:>6,}  {endpoint}")
    print("\nChanges made in Exact before the incremental run")
    for change in changes:
        print(f"  - {change}")
    if live:
        print_live(live)
    print(f"\nLogs and stores of this run: {shown(run_dir)}/")


@dataclass
class Live:
    changes: list[Change]
    way_back: WayBack
    mailchimp_secret: str
    service_runs: int
    way_back_audit: Counter[str] = field(default_factory=Counter)


def near_real_time(boxes: Sandboxes, env: dict[str, str], run_dir: Path, log: Path) -> Live:
    """The webhook service receives both sandboxes' webhooks and runs the jobs; we only change
    data and watch (demo_webhooks.py)."""
    control = Boxes(boxes.exact_url, boxes.mailchimp_url, boxes.list_id, boxes.api_key)
    service = Service(env, run_dir / "webhooks-service.log", free_port())
    mailchimp_url = service.mailchimp_url()
    service.start()
    try:
        print(f"    webhook service on {service.base} (meltano invoke webhooks:serve);"
              " subscribing Exact's topics…", flush=True)
        subscribe_exact(env, service, log)
        register_mailchimp(control, mailchimp_url)
        print("    5 changes in Exact, seconds until Mailchimp holds each…", flush=True)
        changes = make_changes(control)
        time_changes(control, changes)
        service.wait_idle()
        email = pick_member(control)
        print(f"    {email} unsubscribes in Mailchimp…", flush=True)
        way_back = unsubscribe_one(control, service, email)
        runs = service.runs()[0]
    finally:
        service.stop()
    return Live(changes, way_back, mailchimp_url.rsplit("/", 1)[1], runs,
                exclusion_audit(run_dir / "exact-audit.sqlite"))


def _outcomes(counts: Counter[str]) -> str:
    return ", ".join(f"{n:,} {what}" for what, n in counts.most_common() if n > 0) or "none"


def exclusion_audit(path: Path) -> Counter[str]:
    """target-exactonline's decisions on opt-outs: 'written (webhook)', 'unchanged (poll)', …"""
    if not path.exists():
        return Counter()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT outcome, reason FROM exact_audit"
                          " WHERE stream = 'mailing_exclusions'").fetchall()
    return Counter(f"{outcome}" + (" (webhook)" if "(webhook)" in (reason or "") else "")
                   for outcome, reason in rows)


def live_failures(live: Live) -> list[str]:
    back = live.way_back
    failures = [f"not in Mailchimp: {c.what}" for c in live.changes if c.seconds is None]
    if back.seconds is None:
        failures.append(f"{back.email} not excluded in Exact")
    if back.status_after_forward_run != "unsubscribed":
        failures.append(f"{back.email} is {back.status_after_forward_run} after the forward run")
    return failures


def print_live(live: Live) -> None:
    print("\nExact → Mailchimp while the webhook service runs (no job started by the demo)")
    for change in live.changes:
        took = f"{change.seconds:5.1f} s" if change.seconds is not None else "  not in 120 s"
        print(f"  {took}  {change.what}")
    back = live.way_back
    print("\nMailchimp → Exact: an unsubscribe written back (write_exclusions on)")
    took = f"after {back.seconds:.1f} s" if back.seconds is not None else "NOT within 300 s"
    print(f"  {back.email} unsubscribed in Mailchimp; excluded in Exact {took}:")
    for contact in back.contacts:
        field_ = "Email" if (contact.get("Email") or "").strip().lower() == back.email \
            else "BusinessEmail"
        print(f"    contact {contact.get('FullName') or contact.get('LastName')!r}"
              f" (division {contact.get('Division')}, by its {field_}): IsMailingExcluded"
              f" {contact.get('IsMailingExcluded')}")
    print(f"  forward runs started by that write's own webhook: {back.forward_runs}; the member"
          f" is still {back.status_after_forward_run} in Mailchimp")
    print(f"  the service started {live.service_runs} runs in all (debounced, one at a time)")
    print(f"  target-exactonline's audit trail (exact-audit.sqlite), opt-outs:"
          f" {_outcomes(live.way_back_audit)}; its first run also writes back people's own"
          " earlier opt-outs (the forward flow's own, e.g. blocked accounts, are recognised in"
          " target-mailchimp's audit trail and not sent back)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts-per-division", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "output" / "demo")
    args = parser.parse_args(argv)

    run_dir: Path = args.run_dir.resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    log = run_dir / "meltano.log"
    with ExitStack() as stack:
        print(f"Starting the sandboxes (3 divisions × {args.accounts_per_division:,} accounts)…")
        boxes = start_sandboxes(stack, args, run_dir)
        env = meltano_env(boxes, run_dir)
        started = time.time()
        print("Storing the Exact client secret in the encrypted secret store…")
        meltano(["invoke", "tap-exactonline:set-credential", "client_secret"], env, log,
                stdin=boxes.client_secret + "\n")
        print("Storing Exact's webhook secret in the encrypted secret store…")
        meltano(["invoke", "tap-exactonline:set-credential", "webhook_secret"], env, log,
                stdin=boxes.webhook_secret + "\n")
        print("Authorizing the tap with Exact (OAuth authorization-code flow)…")
        meltano(["invoke", "tap-exactonline:authorize", "--fetch"], env, log)
        print("Storing the Mailchimp API key in the encrypted secret store…")
        meltano(["invoke", "target-mailchimp:set-credential"], env, log,
                stdin=boxes.api_key + "\n")
        reports = []
        secrets_ = {"Exact client secret": boxes.client_secret,
                    "Mailchimp API key": boxes.api_key, "secret-store key": env["SECRET_STORE_KEY"]}

        def kill_then_check() -> None:
            if not kill_midway(boxes, env, log):
                return
            leaks = leaked_secrets(run_dir, secrets_, started)
            if leaks:
                raise SystemExit("SECRETS FOUND IN PLAIN TEXT AFTER THE KILL: " + "; ".join(leaks))
            print(f"    killed with {len(boxes.members()):,} members written; no secret in any"
                  " file it left behind. Running it again (--force: Meltano still thinks it"
                  " runs)…", flush=True)

        print("Run 1: first sync, killed midway (SIGKILL to Meltano and every plugin), rerun")
        reports.append(run_job("first sync", boxes, env, log, kill_then_check))
        print("Changing data in Exact…")
        changes = change_exact_data(boxes)
        print("Run 2: incremental sync")
        reports.append(run_job("incremental", boxes, env, log))
        print("Near real time: the webhook service running, changes made both ways")
        live = near_real_time(boxes, env, run_dir, log)
        secrets_["Exact webhook secret"] = boxes.webhook_secret
        secrets_["Mailchimp callback secret"] = live.mailchimp_secret
        print_summary(boxes, reports, changes, run_dir, live)
        failures = live_failures(live)
    leaks = leaked_secrets(run_dir, secrets_, started)
    from secret_store.leaks import files_under

    files = sum(1 for p in files_under(scanned_roots(run_dir)) if "venv" not in p.parts)
    if leaks:
        print("\nSECRETS FOUND IN PLAIN TEXT: " + "; ".join(leaks))
        return 1
    if failures:
        print("\nNEAR REAL TIME FAILED: " + "; ".join(failures))
        return 1
    print(f"Secrets check: none of the {len(secrets_)} secrets (the two webhook secrets"
          f" included) appears, in any encoding, in the {files:,} files under"
          f" {shown(run_dir)}/ (the webhook service's log and inboxes, the demo's"
          " Meltano run files), .meltano/, .env and output/"
          " (tokens and keys are stored encrypted; the store's key only in the environment).")
    print("\nStatus (`meltano invoke target-mailchimp:status`; `--format json` for monitoring):")
    status = subprocess.run([str(BIN / "meltano"), "invoke", "target-mailchimp:status"], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=False)
    print(status.stdout.rstrip() or status.stderr[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
