"""Latency from a change in Exact to the member or order in Mailchimp, through webhooks.

    .venv/bin/python bench/bench_webhook_latency.py --changes 50

Both sandboxes run in this process; the pipeline is isolated as tests/e2e_pipeline.py makes it
(own Meltano system dir, secrets in the encrypted store). After a first full sync, a receiver
(`--receiver service`: `exactmc-webhooks serve`, the default when installed; `tap-loop`: the
tap's receiver plus a loop of ours) is subscribed to Accounts, Contacts and SalesInvoices in
every division with `tap-exactonline-webhooks subscribe --all-topics`. Then `--changes` changes
are made in Exact (new customer, address change, payment, new invoice, in turn, spread over the
divisions, `--interval` seconds apart on average) and the Mailchimp sandbox is polled (its
in-process dump, no API calls) until each change shows there with its new value.

Pass 1: every delivery arrives. Pass 2: the sandbox drops `--drop-rate` of the deliveries and
the 15-minute schedule is emulated by a run every `--poll-interval` seconds (60: scaled down
15×), to show that every change still converges; "unannounced" counts the changes whose every
delivery was lost (caught by a run another delivery triggered, or by polling). Pass 3 drops
every delivery (`--polling-only-changes`): polling alone, latency bounded by its interval.
Results: `bench/results/webhook-latency.json` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from e2e_pipeline import STORE_ID, Pipeline, make_pipeline  # noqa: E402
from exactmc_sandbox.common import started_sandboxes  # noqa: E402
from exactmc_sandbox.exact.sandbox import ExactSandbox  # noqa: E402
from exactmc_sandbox.mailchimp.sandbox import MailchimpSandbox  # noqa: E402
from secret_store import SecretStore  # noqa: E402
from webhook_receivers import (  # noqa: E402
    BIN,
    RECEIVERS,
    Poller,
    Receiver,
    ServiceReceiver,
    run_job,
)

RESULTS = ROOT / "bench" / "results" / "webhook-latency.json"
DIVISIONS = (101, 102, 103)
KINDS = ("new customer", "address change", "payment", "new invoice")
WEBHOOK_SECRET = "bench-webhook-secret-" + "0" * 12


@dataclass
class Change:
    kind: str
    division: int
    made_at: float
    landed: Callable[[dict[str, Any], dict[str, Any]], bool]  # (members, orders) → done?
    keys: tuple[str, ...] = ()  # the Exact keys its webhook deliveries name
    latency: float | None = None


@dataclass
class Snapshot:
    """What Mailchimp holds now: members by email, orders by id."""

    members: dict[str, Any] = field(default_factory=dict)
    orders: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, mailchimp: MailchimpSandbox) -> Snapshot:
        try:
            orders = mailchimp.store(STORE_ID)["orders"]
        except KeyError:
            orders = {}
        return cls({m["email_address"]: m for m in mailchimp.members()}, orders)


class Changer:
    """Makes the four kinds of change in Exact; each knows how to see itself in Mailchimp."""

    def __init__(self, exact: ExactSandbox, mailchimp: MailchimpSandbox, seed: int,
                 first: int = 0) -> None:
        # `first`: numbers of earlier passes are not reused (a value already there lands at once)
        self.exact, self.rng, self.n = exact, random.Random(seed), first
        now = Snapshot.of(mailchimp)
        self.members = now.members
        self.addresses: list[tuple[dict, str]] = []  # (account, the email of its member)
        self.open: list[tuple[dict, str]] = []  # (receivable, its order id), order pending
        self.items: dict[int, dict] = {}
        for division in DIVISIONS:
            accounts = {a["ID"]: a for a in exact.rows("Accounts", division)}
            contacts = exact.rows("Contacts", division)
            emails = [(c.get("Email") or "").strip().lower() for c in contacts]
            for contact, email in zip(contacts, emails, strict=True):
                account = accounts.get(contact["Account"])
                member = self.members.get(email)
                if (account and member and emails.count(email) == 1
                        and (member["merge_fields"].get("ADDRESS") or {}).get("addr1")):
                    self.addresses.append((account, email))
            invoices = {i["InvoiceNumber"]: i for i in exact.rows("SalesInvoices", division)}
            for receivable in exact.rows("Receivables", division):
                invoice = invoices.get(receivable["InvoiceNumber"])
                order_id = f"exact-{division}-{invoice['InvoiceID']}" if invoice else None
                if (not receivable["IsFullyPaid"] and order_id
                        and now.orders.get(order_id, {}).get("financial_status") == "pending"):
                    self.open.append((receivable, order_id))
            self.items[division] = next(
                line for i in invoices.values() for line in i["SalesInvoiceLines"]
                if line.get("Item") and line.get("Quantity", 0) > 0 and line.get("UnitPrice"))
        self.rng.shuffle(self.addresses)
        self.rng.shuffle(self.open)
        # Invoices go to accounts whose members exist (a customer Mailchimp already knows).
        self.buyers = [a for a, _ in self.addresses]

    def make(self, kind: str) -> Change:
        self.n += 1
        maker = {"new customer": self.new_customer, "address change": self.address_change,
                 "payment": self.payment, "new invoice": self.new_invoice}[kind]
        return maker()

    def new_customer(self) -> Change:
        division = DIVISIONS[self.n % len(DIVISIONS)]
        email = f"bench-{self.n}@nieuwe-klant-{self.n}.nl"
        account = self.exact.create("Accounts", {
            "Division": division, "Name": f"Nieuwe Klant {self.n} B.V.", "Status": "C",
            "City": "Utrecht", "AddressLine1": f"Oudegracht {self.n}", "Postcode": "3511 AA",
            "Country": "NL"})
        made_at = time.time()  # the customer is complete once its contact exists
        contact = self.exact.create("Contacts", {
            "Division": division, "Account": account["ID"], "FirstName": "Bench",
            "LastName": f"Klant {self.n}", "Email": email})
        return Change("new customer", division, made_at, lambda m, o: email in m,
                      (account["ID"], contact["ID"]))

    def address_change(self) -> Change:
        account, email = self.addresses.pop()
        street = f"Benchstraat {self.n}"
        made_at = time.time()
        self.exact.update("Accounts", account["ID"], {"AddressLine1": street})
        return Change("address change", account["Division"], made_at, lambda m, o: (
            ((m.get(email) or {}).get("merge_fields", {}).get("ADDRESS") or {}).get("addr1")
            == street), (account["ID"],))

    def payment(self) -> Change:
        receivable, order_id = self.open.pop()
        made_at = time.time()
        self.exact.pay_receivable(receivable["ID"])
        return Change("payment", receivable["Division"], made_at, lambda m, o: (
            o.get(order_id, {}).get("financial_status") == "paid"),
            (order_id.split("-", 2)[2],))

    def new_invoice(self) -> Change:
        account = self.buyers[self.n % len(self.buyers)]
        division = account["Division"]
        line = self.items[division]
        price = round(float(line["UnitPrice"]), 2)
        made_at = time.time()
        invoice = self.exact.create("SalesInvoices", {
            "Division": division, "InvoiceTo": account["ID"], "Type": 8020, "Status": 50,
            "Currency": "EUR", "AmountFC": price, "AmountDC": price,
            "SalesInvoiceLines": [{"Item": line["Item"], "Quantity": 1, "UnitPrice": price}]})
        order_id = f"exact-{division}-{invoice['InvoiceID']}"
        return Change("new invoice", division, made_at, lambda m, o: order_id in o,
                      (invoice["InvoiceID"],))


def watch(mailchimp: MailchimpSandbox, changes: list[Change], stop: threading.Event,
          lock: threading.Lock) -> None:
    """Stamp each change's latency the first time Mailchimp holds its new value."""
    while not stop.wait(0.25):
        now = Snapshot.of(mailchimp)
        seen = time.time()
        with lock:
            for change in changes:
                if change.latency is None and change.landed(now.members, now.orders):
                    change.latency = seen - change.made_at


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def job_runs(workdir: Path) -> int:
    """Runs started since the first sync (triggered and polling), from Meltano's own log lines."""
    return sum(log.read_text(errors="replace").count("Running job with name")
               for log in workdir.glob("*.log") if log.name != "first-sync.log")


def unannounced(changes: list[Change], log: list[dict[str, Any]]) -> list[Change]:
    """Changes no delivery told the receiver of (every one naming their keys was dropped)."""
    delivered = [(e["content"]["Key"], e["sent_at"]) for e in log if e["kind"] == "delivery"]
    return [c for c in changes if not any(
        key in c.keys and sent >= c.made_at for key, sent in delivered)]


def run_pass(name: str, args: argparse.Namespace, exact: ExactSandbox,
             mailchimp: MailchimpSandbox, pipeline: Pipeline, drop_rate: float,
             poll_interval: float | None, count: int) -> dict[str, Any]:
    exact.webhooks.set_faults(drop_rate=drop_rate, seed=args.seed)
    changer = Changer(exact, mailchimp, args.seed + len(name), first=1000 * int(name[0]))
    poller = Poller(pipeline.env, pipeline.workdir, poll_interval).start() \
        if poll_interval else None
    changes: list[Change] = []
    lock, stop = threading.Lock(), threading.Event()
    watcher = threading.Thread(target=watch, args=(mailchimp, changes, stop, lock), daemon=True)
    calls_before, runs_before = exact.calls()["total"], job_runs(pipeline.workdir)
    started = time.time()
    watcher.start()
    rng = random.Random(args.seed)
    for index in range(count):
        change = changer.make(KINDS[index % len(KINDS)])
        with lock:
            changes.append(change)
        time.sleep(rng.uniform(0.5, 1.5) * args.interval)
    deadline = time.time() + args.settle + (2 * poll_interval if poll_interval else 0)
    while time.time() < deadline:
        with lock:
            if all(c.latency is not None for c in changes):
                break
        time.sleep(0.5)
    stop.set()
    watcher.join()
    if poller:
        poller.stop()
    exact.webhooks.wait_idle(30)
    log = exact.webhooks.deliveries()
    latencies = [c.latency for c in changes if c.latency is not None]
    silent = unannounced(changes, log)
    silent_latencies = [c.latency for c in silent if c.latency is not None]
    calls = exact.calls()["total"] - calls_before
    by_kind = {}
    for kind in KINDS:
        values = [c.latency for c in changes if c.kind == kind and c.latency is not None]
        by_kind[kind] = {"changes": sum(c.kind == kind for c in changes),
                         "converged": len(values), "median_s": _r(statistics.median(values))
                         if values else None, "p95_s": _r(percentile(values, 0.95))}
    return {
        "pass": name, "changes": len(changes), "converged": len(latencies),
        "median_s": _r(statistics.median(latencies)) if latencies else None,
        "p95_s": _r(percentile(latencies, 0.95)), "max_s": _r(max(latencies, default=None)),
        "deliveries_dropped": sum(e["kind"] == "dropped" and e["sent_at"] >= started
                                  for e in log),
        "deliveries_sent": sum(e["kind"] == "delivery" and e["sent_at"] >= started
                               for e in log),
        "unannounced_changes": len(silent),
        "unannounced_converged": len(silent_latencies),
        "unannounced_max_s": _r(max(silent_latencies, default=None)),
        "exact_calls": calls, "exact_calls_per_change": _r(calls / max(1, len(changes))),
        "job_runs": job_runs(pipeline.workdir) - runs_before,
        "polling_runs": poller.runs if poller else 0,
        "polling_runs_refused_by_lock": poller.refused if poller else 0,
        "by_kind": by_kind, "duration_s": _r(time.time() - started),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def subscribe_all(pipeline: Pipeline, callback: str) -> None:
    import subprocess

    env = {**pipeline.env, "TAP_EXACTONLINE_WEBHOOK_CALLBACK_URL": callback}
    done = subprocess.run([str(BIN / "tap-exactonline-webhooks"), "subscribe", "--config", "ENV",
                           "--all-topics"], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"subscribe failed: {done.stderr[-2000:]}")


def table(result: dict[str, Any]) -> str:
    lines = ["| pass | changes | converged | median s | p95 s | max s | dropped | "
             "unannounced (converged, max s) | Exact calls/change | runs (polling) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for p in result["passes"]:
        lines.append(f"| {p['pass']} | {p['changes']} | {p['converged']} | {p['median_s']} | "
                     f"{p['p95_s']} | {p['max_s']} | {p['deliveries_dropped']} | "
                     f"{p['unannounced_changes']} ({p['unannounced_converged']}, "
                     f"{p['unannounced_max_s']}) | "
                     f"{p['exact_calls_per_change']} | {p['job_runs']} "
                     f"({p['polling_runs']}) |")
    lines.append("")
    lines.append("| pass | kind | changes | converged | median s | p95 s |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for p in result["passes"]:
        for kind, k in p["by_kind"].items():
            lines.append(f"| {p['pass']} | {kind} | {k['changes']} | {k['converged']} | "
                         f"{k['median_s']} | {k['p95_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.5,
                        help="mean seconds between two changes (uniform 0.5×–1.5×)")
    parser.add_argument("--receiver", choices=sorted(RECEIVERS),
                        default="service" if ServiceReceiver.available() else "tap-loop")
    parser.add_argument("--debounce", type=float, default=2.0)
    parser.add_argument("--drop-rate", type=float, default=0.2, help="pass 2's lost deliveries")
    parser.add_argument("--poll-interval", type=float, default=60.0,
                        help="pass 2's emulated schedule (15 minutes scaled down)")
    parser.add_argument("--settle", type=float, default=90.0,
                        help="seconds to wait after the last change for the rest to land")
    parser.add_argument("--accounts-per-division", type=int, default=100)
    parser.add_argument("--minutely-limit", type=int, default=60,
                        help="Exact's calls per minute per company (the real limit is 60)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--polling-only-changes", type=int, default=8,
                        help="pass 3: changes with every delivery dropped (0: no pass 3)")
    parser.add_argument("--passes", choices=("all", "1", "2", "3"), default="all")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp, \
            started_sandboxes(ExactSandbox) as exact_factory, \
            started_sandboxes(MailchimpSandbox) as mailchimp_factory:
        exact = exact_factory(accounts_per_division=args.accounts_per_division, seed=args.seed,
                              webhook_secret=WEBHOOK_SECRET, webhook_validation_delay=0.2,
                              minutely_limit=args.minutely_limit)
        mailchimp = mailchimp_factory()
        pipeline = make_pipeline(exact, mailchimp, Path(tmp))
        # The webhook secret where users keep it (set-credential): the encrypted store.
        SecretStore(Path(tmp) / "secrets", pipeline.env["SECRET_STORE_KEY"]).update(
            f"exactonline-{exact.client_id}-credentials", webhook_secret=WEBHOOK_SECRET)
        began = time.time()
        if not run_job(pipeline.env, Path(tmp) / "first-sync.log"):
            print((Path(tmp) / "first-sync.log").read_text()[-3000:], file=sys.stderr)
            return 1
        first_sync = time.time() - began
        receiver: Receiver = RECEIVERS[args.receiver](pipeline.env, Path(tmp), args.debounce)
        receiver.start()
        passes = []
        try:
            subscribe_all(pipeline, receiver.callback)
            print(f"first sync {first_sync:.1f} s; receiver {receiver.name} on "
                  f"{receiver.callback}; {len(exact.webhooks.subscriptions())} subscriptions",
                  flush=True)
            if args.passes in ("all", "1"):
                passes.append(run_pass("1: all delivered", args, exact, mailchimp, pipeline,
                                       0.0, None, args.changes))
                print(json.dumps(passes[-1]), flush=True)
            if args.passes in ("all", "2"):
                passes.append(run_pass(f"2: {args.drop_rate:.0%} dropped + polling "
                                       f"{args.poll_interval:g} s", args, exact, mailchimp,
                                       pipeline, args.drop_rate, args.poll_interval,
                                       args.changes))
                print(json.dumps(passes[-1]), flush=True)
            if args.passes in ("all", "3") and args.polling_only_changes:
                # Nothing delivered at all (a firewall, a dead receiver): polling alone.
                passes.append(run_pass(f"3: all dropped, polling {args.poll_interval:g} s",
                                       args, exact, mailchimp, pipeline, 1.0,
                                       args.poll_interval, args.polling_only_changes))
                print(json.dumps(passes[-1]), flush=True)
        finally:
            receiver.stop()
        result = {
            "command": "bench/bench_webhook_latency.py " + " ".join(argv or sys.argv[1:]),
            "receiver": receiver.name, "triggered_runs_counted": receiver.runs,
            "accounts_per_division": args.accounts_per_division,
            "divisions": len(DIVISIONS), "exact_minutely_limit": args.minutely_limit,
            "debounce_s": args.debounce, "mean_interval_s": args.interval,
            "first_sync_s": round(first_sync, 1),
            "goal": {"median_s": 15, "p95_s": 60}, "passes": passes,
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
