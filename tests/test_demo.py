"""`scripts/demo.py` at a small size: both near-real-time sections hold what issue 8 promises.

The demo itself reads the sandboxes (Mailchimp's members and orders, Exact's contacts) and exits
1 when a change does not reach Mailchimp, the contact is not excluded in Exact, the member is
re-subscribed, or a secret is found in a file; here we also check what it printed and what
target-exactonline's audit trail recorded.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from e2e_pipeline import ROOT


def test_demo_shows_both_directions(meltano_plugins: None, tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--accounts-per-division", "20",
         "--run-dir", str(run_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    out = done.stdout
    assert done.returncode == 0, (out + done.stderr)[-4000:]

    forward = out.split("Exact → Mailchimp while the webhook service runs")[1]
    forward = forward.split("Mailchimp → Exact")[0]
    seconds = [float(s) for s in re.findall(r"^\s+([\d.]+) s  ", forward, re.MULTILINE)]
    assert len(seconds) == 5 and max(seconds) < 60, forward
    for kind in ("new customer", "address change", "payment", "new invoice"):
        assert kind in forward

    back = out.split("Mailchimp → Exact: an unsubscribe written back")[1]
    email = re.search(r"^\s+(\S+@\S+) unsubscribed in Mailchimp; excluded in Exact after",
                      back, re.MULTILINE).group(1)
    assert re.search(r"IsMailingExcluded True", back)
    assert "IsMailingExcluded False" not in back
    assert "the member is still unsubscribed in Mailchimp" in back
    assert "Secrets check: none of the 5 secrets" in out
    status = out.split("Status (`meltano invoke target-mailchimp:status`")[1]  # the demo ends so
    assert "Mailchimp, last successful run:" in status and "Exact budget today" in status

    # The write went through target-exactonline, from the webhook's event, and is audited.
    with sqlite3.connect(run_dir / "exact-audit.sqlite") as db:
        written = db.execute(
            "SELECT COUNT(*) FROM exact_audit WHERE stream = 'mailing_exclusions'"
            " AND record_key = ? AND outcome = 'written' AND reason LIKE '%(webhook)%'",
            (email,)).fetchone()[0]
    assert written >= 1
    # Only her own opt-out went back: the forward flow's (blocked accounts, exclusions) did not.
    with sqlite3.connect(run_dir / "exact-audit.sqlite") as db:
        others = db.execute(
            "SELECT COUNT(*) FROM exact_audit WHERE stream = 'mailing_exclusions'"
            " AND record_key != ? AND outcome = 'written'", (email,)).fetchone()[0]
    assert others == 0
