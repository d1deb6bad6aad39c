"""The long reliability soak: seeded draws from the whole case catalogue of tests/reliability/.

    .venv/bin/python bench/soak.py --seed 1 --cases 40

Every case is played once before any repeats (in a seeded order); repeats vary the Exact seed and
the kill positions. Figures per case and in total go to a JSON results file (default
`output/reliability/soak-seed<N>.json`) and a Markdown table on stdout, the table of the README's
"Reliability" section.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from exactmc_sandbox.common import started_sandboxes  # noqa: E402
from exactmc_sandbox.exact.sandbox import ExactSandbox  # noqa: E402
from exactmc_sandbox.mailchimp.sandbox import MailchimpSandbox  # noqa: E402
from reliability.case_spec import Case  # noqa: E402
from reliability.cases import catalogue, play_case  # noqa: E402
from reliability.verdict import COUNTED, Outcome  # noqa: E402

COLUMNS = ("tried", *COUNTED, "unexercised")
HEADINGS = ("cases tried", "lost", "duplicated", "wrong", "re-subscribed", "secrets found",
            "failed runs", "unexercised")


def draw(rng: random.Random, count: int, groups: set[str] | None) -> list[Case]:
    cases = [c for c in catalogue() if groups is None or c.group in groups]
    drawn: list[Case] = []
    while len(drawn) < count:
        round_ = cases[:]
        rng.shuffle(round_)
        drawn += round_
    return drawn[:count]


def play(case: Case, index: int, base: Path, rng: random.Random, accounts: int) -> Outcome:
    with started_sandboxes(ExactSandbox) as exact, started_sandboxes(MailchimpSandbox) as mc:
        try:
            return play_case(case, (exact, mc), base / f"case-{index:03d}",
                             seed=rng.randint(1, 10_000), accounts=accounts, rng=rng)
        except Exception as exc:  # a harness crash is a failed case, the soak goes on
            outcome = Outcome(case.name)
            outcome.add("failed_runs", f"harness error {type(exc).__name__}: {exc}")
            return outcome


def table(rows: list[dict], by_group: bool = False) -> str:
    """Figures per case (or per group: kill, fault, input, parallel, webhook) and in total."""
    lines = [f"| {'group' if by_group else 'case'} | " + " | ".join(HEADINGS) + " |",
             "|---|" + "---:|" * len(HEADINGS)]
    by_case: dict[str, dict[str, int]] = {}
    for row in rows:
        key = row["case"].split(":")[0] if by_group else row["case"]
        into = by_case.setdefault(key, dict.fromkeys(COLUMNS, 0))
        for column in COLUMNS:
            into[column] += row[column]
    for name, figures in [*sorted(by_case.items()), ("**total**", _total(rows))]:
        lines.append(f"| {name} | " + " | ".join(str(figures[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _total(rows: list[dict]) -> dict[str, int]:
    return {column: sum(row[column] for row in rows) for column in COLUMNS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=40, help="cases to play")
    parser.add_argument("--accounts", type=int, default=25, help="accounts per division")
    parser.add_argument("--groups", help="only these groups: kill,fault,input,parallel,webhook")
    parser.add_argument("--out", type=Path, help="results file (JSON)")
    parser.add_argument("--no-install", action="store_true", help="skip `meltano install`")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "output" / "reliability" / f"soak-seed{args.seed}.json"
    if not args.no_install:
        subprocess.run([str(ROOT / ".venv" / "bin" / "meltano"), "install"], cwd=ROOT,
                       check=True, capture_output=True,
                       env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"})
    rng = random.Random(args.seed)
    groups = set(args.groups.split(",")) if args.groups else None
    base = Path(tempfile.mkdtemp(prefix=f"soak-seed{args.seed}-"))
    rows = []
    started = time.monotonic()
    for index, case in enumerate(draw(rng, args.cases, groups)):
        began = time.monotonic()
        outcome = play(case, index, base, rng, args.accounts)
        row = {"case": outcome.case, **{c: getattr(outcome, c) for c in COLUMNS},
               "notes": outcome.notes, "seconds": round(time.monotonic() - began, 1)}
        rows.append(row)
        status = "ok" if outcome.clean else "FAILED"
        print(f"[{index + 1}/{args.cases}] {status} {outcome.case} ({row['seconds']} s)",
              flush=True)
        if not outcome.clean:
            print("    " + "\n    ".join(outcome.notes[:6]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python bench/soak.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out.write_text(json.dumps({"command": command, "seed": args.seed,
                               "accounts_per_division": args.accounts,
                               "seconds": round(time.monotonic() - started),
                               "total": _total(rows), "cases": rows}, indent=1))
    print()
    print(table(rows))
    print()
    print(table(rows, by_group=True))
    print(f"\nResults: {out} (workdirs under {base})")
    failed = sum(1 for row in rows if any(row[c] for c in COLUMNS if c != "tried"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
