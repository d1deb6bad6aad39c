"""The demo's near-real-time part: the webhook service running, changes made both ways, timed.

After the demo's scheduled-style runs, `meltano invoke webhooks:serve` receives the Exact
sandbox's signed deliveries and the Mailchimp sandbox's list webhooks and starts the jobs
itself; nothing here runs a job. It makes a few changes in Exact and times each until Mailchimp
holds it (polling the sandbox's `/_sandbox` dumps, which cost no API calls), then unsubscribes
a member in Mailchimp and waits for her contacts to be excluded from mailing in Exact and for
the forward run that this write's own webhook starts.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from exactmc_webhooks.settings import EXACT_TRIGGER_COMMAND

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
DIVISIONS = (101, 102, 103)
STORE_ID = "exact-online"


@dataclass
class Change:
    what: str
    made_at: float
    landed: Callable[[dict[str, Any], dict[str, Any]], bool]  # (members, orders) → in Mailchimp?
    seconds: float | None = None


@dataclass
class WayBack:
    email: str = ""
    contacts: list[dict[str, Any]] = field(default_factory=list)  # as Exact holds them after
    seconds: float | None = None
    status_after_forward_run: str = ""
    forward_runs: int = 0


def way_back_env(env: dict[str, str], run_dir: Path, exact_url: str, mailchimp_url: str,
                 list_id: str) -> dict[str, str]:
    """Settings of tap-mailchimp, target-exactonline and the service (environment variables)."""
    meltano = str(BIN / "meltano")
    return {
        "TAP_MAILCHIMP_BASE_URL": f"{mailchimp_url}/3.0",
        "TAP_MAILCHIMP_LOGIN_URL": mailchimp_url,
        "TAP_MAILCHIMP_LIST_ID": list_id,
        "TAP_MAILCHIMP_SECRET_STORE_PATH": str(run_dir / "secrets"),
        "TARGET_EXACTONLINE_BASE_URL": f"{exact_url}/nl",
        "TARGET_EXACTONLINE_CLIENT_ID": env["TAP_EXACTONLINE_CLIENT_ID"],
        "TARGET_EXACTONLINE_ALL_DIVISIONS": "true",
        "TARGET_EXACTONLINE_TOKEN_STORE_PATH": str(run_dir / "secrets"),
        "TARGET_EXACTONLINE_AUDIT_STORE_URL": f"sqlite:///{run_dir / 'exact-audit.sqlite'}",
        "TARGET_EXACTONLINE_WRITE_EXCLUSIONS": "true",  # off by default: on for the demo
        # The forward flow's own opt-outs are recognised in its audit trail (not sent back),
        # and a tag renamed before Exact's change gets Exact's name back in this Mailchimp.
        "TAP_MAILCHIMP_FORWARD_AUDIT_STORE_URL": env["TARGET_MAILCHIMP_AUDIT_STORE_URL"],
        "TARGET_EXACTONLINE_MAILCHIMP_BASE_URL": f"{mailchimp_url}/3.0",
        "TARGET_EXACTONLINE_MAILCHIMP_LOGIN_URL": mailchimp_url,
        "WEBHOOKS_CLIENT_ID": env["TAP_EXACTONLINE_CLIENT_ID"],
        "WEBHOOKS_SECRET_STORE_PATH": str(run_dir / "secrets"),
        # No inbox setting: the service and both taps share their default database,
        # $MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite (the demo's own system dir).
        # The service's default trigger (the job scoped to the deliveries' partitions), with
        # --force: the demo's killed first run still counts as running for Meltano; the
        # plugins' run locks keep two runs of one company or audience apart.
        "WEBHOOKS_TRIGGER_COMMAND": EXACT_TRIGGER_COMMAND.replace(
            "meltano run", f"{meltano} run --force"),
        "WEBHOOKS_MAILCHIMP_TRIGGER_COMMAND": f"{meltano} run --force mailchimp-to-exactonline",
    }


class Service:
    """`meltano invoke webhooks:serve` on a free loopback port, its output in `log`."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.env, self.log, self.port = env, log, port
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def mailchimp_url(self) -> str:
        done = subprocess.run(
            [str(BIN / "meltano"), "invoke", "webhooks:mailchimp-url", "--base", self.base],
            cwd=ROOT, env=self.env, capture_output=True, text=True, check=False)
        found = re.search(r"^(http://\S+/mailchimp/\S+)$", done.stdout, re.MULTILINE)
        if done.returncode != 0 or not found:
            raise SystemExit(f"webhooks:mailchimp-url failed: {done.stderr[-1500:]}")
        return found.group(1)

    def start(self) -> None:
        # Its own session: stopping it reaches Meltano, the service and any run it started.
        self.process = subprocess.Popen(
            [str(BIN / "meltano"), "invoke", "webhooks:serve", "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"The webhook service exited; see {self.log}")
            try:
                requests.get(f"{self.base}/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise SystemExit(f"The webhook service did not come up; see {self.log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def runs(self) -> tuple[int, int]:
        """(runs started, runs ended) by the service so far, from its log."""
        text = self.log.read_text(errors="replace")
        return (len(re.findall(r"Trigger \S+: run \d+ starts", text)),
                len(re.findall(r"Trigger \S+: run \d+ ended", text)))

    def forward_runs_ended(self) -> int:
        text = self.log.read_text(errors="replace")
        return len(re.findall(r"Trigger exact\S*: run \d+ ended", text))

    def wait_idle(self, timeout: float = 180) -> bool:
        """Every run it started has ended and none is due (quiet past the debounce)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.log.read_text(errors="replace")
            started, ended = self.runs()
            if started == ended:
                time.sleep(4)  # debounce 2 s: a run due now would have started by then
                if self.log.read_text(errors="replace") == before:
                    return True
            time.sleep(0.5)
        return False


class Boxes:
    """The two sandboxes' control APIs (`/_sandbox`), over HTTP."""

    def __init__(self, exact_url: str, mailchimp_url: str, list_id: str, api_key: str) -> None:
        self.exact_url, self.mailchimp_url = exact_url, mailchimp_url
        self.list_id, self.api_key = list_id, api_key

    def exact(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.exact_url}/_sandbox/{path}", timeout=30,
                                    **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def rows(self, entity: str, division: int) -> list[dict[str, Any]]:
        return self.exact("GET", f"data/{entity}", params={"division": division})

    def members(self) -> dict[str, Any]:
        response = requests.get(
            f"{self.mailchimp_url}/_sandbox/lists/{self.list_id}/members", timeout=30)
        response.raise_for_status()
        return {m["email_address"]: m for m in response.json()["members"]}

    def orders(self) -> dict[str, Any]:
        response = requests.get(f"{self.mailchimp_url}/_sandbox/ecommerce/stores/{STORE_ID}",
                                timeout=30)
        return {o["id"]: o for o in response.json()["orders"]} if response.ok else {}


def subscribe_exact(env: dict[str, str], service: Service, log: Path) -> int:
    """`tap-exactonline:webhooks-subscribe` (Accounts, Contacts, SalesInvoices per division)."""
    for attempt in range(2):
        with log.open("ab") as out:
            done = subprocess.run(
                [str(BIN / "meltano"), "invoke", "tap-exactonline:webhooks-subscribe"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False,
                env={**env, "TAP_EXACTONLINE_WEBHOOK_CALLBACK_URL": f"{service.base}/exact"})
        if done.returncode == 0:
            return 0
        if attempt == 0:  # e.g. Exact's minute budget spent (429): its window restarts on :00
            time.sleep(61 - time.time() % 60)
    raise SystemExit(f"tap-exactonline:webhooks-subscribe failed; see {log}")


def register_mailchimp(boxes: Boxes, url: str) -> None:
    """The list webhook, as an operator registers it (`POST /lists/{id}/webhooks`)."""
    response = requests.post(
        f"{boxes.mailchimp_url}/3.0/lists/{boxes.list_id}/webhooks", auth=("demo", boxes.api_key),
        json={"url": url, "events": {"unsubscribe": True, "cleaned": True, "upemail": True},
              # Not `api`: those are our own forward flow's writes (no loop; tap-mailchimp
              # also recognises them in target-mailchimp's audit trail).
              "sources": {"user": True, "admin": True, "api": False}}, timeout=30)
    if not response.ok:
        raise SystemExit(f"registering the Mailchimp webhook failed: {response.text[:500]}")


def make_changes(boxes: Boxes) -> list[Change]:
    """Five changes in Exact, a second or so apart, each knowing how it shows in Mailchimp."""
    members, orders = boxes.members(), boxes.orders()
    tag = secrets.token_hex(2)
    changes: list[Change] = []

    def new_customer(division: int, n: int) -> None:
        email = f"live-{tag}-{n}@snelle-klant.nl"
        account = boxes.exact("POST", "data/Accounts", json={
            "Division": division, "Name": f"Snelle Klant {n} B.V.", "Status": "C",
            "City": "Utrecht", "AddressLine1": f"Vismarkt {n}", "Postcode": "3511 AA",
            "Country": "NL"})
        boxes.exact("POST", "data/Contacts", json={
            "Division": division, "Account": account["ID"], "FirstName": "Live",
            "LastName": f"Klant {n}", "Email": email})
        changes.append(Change(f"new customer, contact {email} (division {division})",
                              time.time(), lambda m, o: email in m))

    new_customer(101, 1)
    time.sleep(1)

    accounts = {a["ID"]: a for d in DIVISIONS for a in boxes.rows("Accounts", d)}
    contacts = [c for d in DIVISIONS for c in boxes.rows("Contacts", d)]
    emails = [(c.get("Email") or "").strip().lower() for c in contacts]
    movable = [accounts[c["Account"]] for c, e in zip(contacts, emails, strict=True)
               if c.get("Account") in accounts and emails.count(e) == 1
               and ((members.get(e) or {}).get("merge_fields", {}).get("ADDRESS") or {})
               .get("addr1")]
    moved = movable[len(movable) // 2]
    street = f"Live-straat {tag}"
    made_at = time.time()
    boxes.exact("PATCH", f"data/Accounts/{moved['ID']}", json={"AddressLine1": street})
    moved_email = next(e for c, e in zip(contacts, emails, strict=True)
                       if c.get("Account") == moved["ID"] and e in members)
    changes.append(Change(
        f"address change of {moved['Name']!r}", made_at, lambda m, o: (
            ((m.get(moved_email) or {}).get("merge_fields", {}).get("ADDRESS") or {})
            .get("addr1") == street)))
    time.sleep(1)

    pending = None
    for division in DIVISIONS:
        invoices = {i["InvoiceNumber"]: i for i in boxes.rows("SalesInvoices", division)}
        for receivable in boxes.rows("Receivables", division):
            invoice = invoices.get(receivable["InvoiceNumber"])
            order_id = f"exact-{division}-{invoice['InvoiceID']}" if invoice else ""
            if (not receivable["IsFullyPaid"]
                    and orders.get(order_id, {}).get("financial_status") == "pending"):
                pending = (receivable, order_id)
                break
        if pending:
            break
    if pending:
        receivable, order_id = pending
        made_at = time.time()
        boxes.exact("POST", f"data/Receivables/{receivable['ID']}/pay")
        changes.append(Change(f"payment of invoice {receivable['InvoiceNumber']}", made_at,
                              lambda m, o: o.get(order_id, {}).get("financial_status") == "paid"))
        time.sleep(1)

    division = moved["Division"]
    line = next(line for i in boxes.rows("SalesInvoices", division)
                for line in i.get("SalesInvoiceLines") or []
                if line.get("Item") and (line.get("Quantity") or 0) > 0 and line.get("UnitPrice"))
    price = round(float(line["UnitPrice"]), 2)
    made_at = time.time()
    invoice = boxes.exact("POST", "data/SalesInvoices", json={
        "Division": division, "InvoiceTo": moved["ID"], "Type": 8020, "Status": 50,
        "Currency": "EUR", "AmountFC": price, "AmountDC": price,
        "SalesInvoiceLines": [{"Item": line["Item"], "Quantity": 1, "UnitPrice": price}]})
    new_order = f"exact-{division}-{invoice['InvoiceID']}"
    changes.append(Change(f"new invoice {invoice.get('InvoiceNumber', '')} of €{price:,.2f}"
                          f" for {moved['Name']!r}", made_at, lambda m, o: new_order in o))
    time.sleep(1)

    new_customer(102, 2)
    return changes


def time_changes(boxes: Boxes, changes: list[Change], timeout: float = 120) -> None:
    """Stamp each change the first time Mailchimp holds it (dumps polled once a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(c.seconds is None for c in changes):
        members, orders = boxes.members(), boxes.orders()
        seen = time.time()
        for change in changes:
            if change.seconds is None and change.landed(members, orders):
                change.seconds = seen - change.made_at
        time.sleep(1)


def holders(boxes: Boxes, email: str) -> list[dict[str, Any]]:
    """Every Exact contact whose Email or BusinessEmail is this address (any case)."""
    return [c for d in DIVISIONS for c in boxes.rows("Contacts", d)
            if email in ((c.get("Email") or "").strip().lower(),
                         (c.get("BusinessEmail") or "").strip().lower())]


def unsubscribe_one(boxes: Boxes, service: Service, email: str,
                    timeout: float = 300) -> WayBack:
    """She unsubscribes in Mailchimp; the service runs the way back, then the forward run."""
    result = WayBack(email=email)
    forward_before = service.forward_runs_ended()
    made_at = time.time()
    response = requests.post(
        f"{boxes.mailchimp_url}/_sandbox/lists/{boxes.list_id}/members/{email}/status",
        json={"status": "unsubscribed"}, timeout=30)
    response.raise_for_status()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result.contacts = holders(boxes, email)
        if result.contacts and all(c.get("IsMailingExcluded") for c in result.contacts):
            result.seconds = time.time() - made_at
            break
        time.sleep(1)
    # Exact's webhook for that write starts a forward run: it must keep her unsubscribed.
    service.wait_idle()
    result.forward_runs = service.forward_runs_ended() - forward_before
    result.status_after_forward_run = boxes.members().get(email, {}).get("status", "absent")
    return result


def pick_member(boxes: Boxes) -> str:
    """A member still reachable (subscribed, else transactional: most have no consent) whose
    address Exact contacts hold; one held by two contacts if any (both get excluded)."""
    members = boxes.members()
    held: dict[str, set[str]] = {}
    for division in DIVISIONS:
        for contact in boxes.rows("Contacts", division):
            for key in ("Email", "BusinessEmail"):
                email = (contact.get(key) or "").strip().lower()
                if members.get(email, {}).get("status") in ("subscribed", "transactional"):
                    held.setdefault(email, set()).add(contact["ID"])
    if not held:
        raise SystemExit("No member with a contact in Exact to unsubscribe.")
    return max(sorted(held), key=lambda e: (min(len(held[e]), 2),
                                            members[e]["status"] == "subscribed"))
