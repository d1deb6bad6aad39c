"""The scale benchmark's derived figures (ratios, the model under the real limits) and its
Markdown table, from the measured results (`bench/results/scale.json`)."""

from __future__ import annotations

from typing import Any

# Exact's real limits per company, and Mailchimp's connections per account.
EXACT_PER_MINUTE = 60
EXACT_PER_DAY = 5000
MAILCHIMP_CONNECTIONS = 10
# Choice (unconfirmed): a real Mailchimp call takes ~0.3 s (a batch-subscribe of 500 members
# longer, a member read shorter); the model's Mailchimp time is calls × this / connections.
MAILCHIMP_SECONDS_PER_CALL = 0.3
MB = 1024 * 1024


def per_thousand(count: float, of: float) -> float | None:
    return round(count * 1000 / of, 3) if of else None


def stage_figures(records: int, wall: float, cpu: float, peak_rss: int,
                  floor_cpu: float, cpu_runs: list[float] | None = None) -> dict[str, Any]:
    """A stage alone: records/s, CPU s per 1,000 records, × the floor (CPU of plain
    json.loads + json.dumps of the same lines: CPU, because wall swings on a shared machine).
    `cpu_runs`: the CPU of each run when it was run more than once (`cpu` is the least)."""
    return {
        "records": records, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "cpu_s_runs": [round(run, 2) for run in cpu_runs or [cpu]],
        "records_per_s": round(records / wall) if wall else None,
        "cpu_s_per_1k": per_thousand(cpu, records),
        "x_floor": round(cpu / floor_cpu, 1) if floor_cpu else None,
        "peak_rss_mb": round(peak_rss / MB),
    }


def model_real_limits(accounts: int, exact_calls: int, mailchimp_calls: int,
                      pipeline_cpu_s: float) -> dict[str, Any]:
    """The first sync under the real limits, from measured counts: Exact's calls at 60 a
    minute (the company's divisions share the budget: the conservative reading), the share of
    the 5,000 a day, Mailchimp's calls over 10 connections, and the CPU we measured."""
    exact_minutes = exact_calls / EXACT_PER_MINUTE
    mailchimp_minutes = mailchimp_calls * MAILCHIMP_SECONDS_PER_CALL / MAILCHIMP_CONNECTIONS / 60
    per_1k_accounts = exact_calls * 1000 / accounts if accounts else 0.0
    return {
        "exact_calls": exact_calls,
        "exact_calls_per_1k_accounts": round(per_1k_accounts, 2),
        "exact_minutes_at_60_per_min": round(exact_minutes, 1),
        "exact_days_of_5000_budget": round(exact_calls / EXACT_PER_DAY, 3),
        "accounts_per_daily_budget": round(EXACT_PER_DAY * 1000 / per_1k_accounts)
        if per_1k_accounts else None,
        "mailchimp_calls": mailchimp_calls,
        "mailchimp_minutes_at_10_connections": round(mailchimp_minutes, 1),
        "modelled_minutes": round(max(exact_minutes, mailchimp_minutes, pipeline_cpu_s / 60), 1),
        "assumptions": f"Exact {EXACT_PER_MINUTE}/min and {EXACT_PER_DAY}/day per company;"
                       f" Mailchimp {MAILCHIMP_SECONDS_PER_CALL} s per call (unconfirmed),"
                       f" {MAILCHIMP_CONNECTIONS} connections; the slowest of the three bounds",
    }


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _rss(peaks: dict[str, Any], *roles: str) -> str:
    return " / ".join(_num(peaks.get(role)) if peaks.get(role) is not None else "–"
                      for role in roles)


def flatness(sizes: list[dict[str, Any]]) -> dict[str, float]:
    """Per stage: CPU per 1k records at the largest size measured over that at the smallest."""
    measured = [size for size in sizes if size.get("stages")]
    if len(measured) < 2:
        return {}
    small, large = measured[0]["stages"], measured[-1]["stages"]
    return {name: large[name]["cpu_s_per_1k"] / small[name]["cpu_s_per_1k"]
            for name in ("tap", "mapper", "target")
            if name in small and name in large and small[name].get("cpu_s_per_1k")
            and large[name].get("cpu_s_per_1k") is not None}


def exact_calls_per_1k_more_rows(sizes: list[dict[str, Any]]) -> float | None:
    """Exact's calls per 1,000 rows read as a rate: the first sync's extra calls over its extra
    rows from the smallest size measured to the largest (the calls any size makes, such as the
    token, the divisions and each division's cost centers, cancel out)."""
    measured = [size["calls"] for size in sizes
                if size.get("calls", {}).get("rows_read") and size["calls"].get("exact_first_sync")]
    if len(measured) < 2 or measured[-1]["rows_read"] == measured[0]["rows_read"]:
        return None
    small, large = measured[0], measured[-1]
    return per_thousand(large["exact_first_sync"] - small["exact_first_sync"],
                        large["rows_read"] - small["rows_read"])


def markdown(results: dict[str, Any]) -> str:
    sizes = sorted(results.get("sizes", {}).values(), key=lambda r: r["accounts"])
    measured = "; ".join(
        f"{size['accounts']:,} at {size.get('measured_at', '?')}"
        f" by `{size.get('command', results.get('command', 'bench/run'))}`" for size in sizes)
    lines = [
        f"Machine: {results.get('machine', '?')}. Measured: {measured}.",
        "",
        "End to end (`meltano run exactonline-to-mailchimp`, rate limits off):",
        "",
        "| accounts | first sync s | CPU s (pipeline) | sandbox CPU share |"
        " incremental, 10 changes: s / Mailchimp calls | empty incremental: Exact calls |"
        " Exact calls per 1k rows |"
        " Mailchimp calls per 1k outputs | `GET /lists/*/members` share |"
        " peak RSS MB meltano / tap / mapper / target / Exact sb / Mailchimp sb |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        e2e = size.get("end_to_end", {})
        first = e2e.get("first_sync", {})
        wall = _num(first.get("wall_s"), 0) + ("" if first.get("finished", True)
                                                else " (did not finish)")
        inc, empty = e2e.get("incremental_10", {}), e2e.get("incremental_empty", {})
        calls = size.get("calls", {})
        share = calls.get("mailchimp_members_get_share")
        peaks = {**first.get("peak_rss_mb", {}), **size.get("sandbox_peak_rss_mb", {})}
        lines.append(
            f"| {size['accounts']:,} | {wall} | {_num(first.get('cpu_s'), 0)} |"
            f" {_num(size.get('sandbox_cpu_share_pct'), 0)} % |"
            f" {_num(inc.get('wall_s'))} / {_num(inc.get('mailchimp_calls'))} |"
            f" {_num(empty.get('exact_calls'))} | {_num(calls.get('exact_per_1k_rows'), 2)} |"
            f" {_num(calls.get('mailchimp_per_1k_outputs'), 2)} |"
            f" {_num(None if share is None else share * 100, 0)} % |"
            f" {_rss(peaks, 'meltano', 'tap', 'mapper', 'target', 'exact', 'mailchimp')} |")
    rate = exact_calls_per_1k_more_rows(sizes)
    if rate is not None:
        lines += ["", f"Exact calls per 1,000 more rows read, smallest size to largest: {rate:.2f}"
                  " (the calls every first sync makes whatever its size weigh most at the"
                  " smallest)."]
    lines += [
        "",
        "Each stage alone on captured input (× floor: its CPU over the CPU of plain `json.loads`"
        " + `json.dumps` of the same lines; goal ≤ 5×, CPU per 1k records flat across sizes)."
        " Each was run several times in rounds; the figures are the least of its runs, whose"
        " CPU is listed:",
        "",
        "| accounts | stage | records | wall s | CPU s | CPU s of each run | CPU s per 1k |"
        " records/s | × floor | peak RSS MB |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for size in sizes:
        for name, stage in size.get("stages", {}).items():
            lines.append(
                f"| {size['accounts']:,} | {name} | {_num(stage.get('records'))} |"
                f" {_num(stage.get('wall_s'))} | {_num(stage.get('cpu_s'))} |"
                f" {' / '.join(_num(run) for run in stage.get('cpu_s_runs', []))} |"
                f" {_num(stage.get('cpu_s_per_1k'), 3)} | {_num(stage.get('records_per_s'))} |"
                f" {_num(stage.get('x_floor'))} | {_num(stage.get('peak_rss_mb'))} |")
    flat = flatness(sizes)
    if flat:
        lines += ["", "CPU per 1k records, largest size over smallest (goal within ±25 %): "
                  + ", ".join(f"{name} {ratio:.2f}×" for name, ratio in flat.items()) + "."]
    lines += [
        "",
        "The first sync under the real limits, modelled from the measured counts (Exact 60"
        " calls/min and 5,000/day per company; Mailchimp 10 connections at an assumed 0.3 s a"
        " call):",
        "",
        "| accounts | Exact calls | per 1k accounts | Exact minutes | share of a day's budget |"
        " accounts per day's budget | Mailchimp calls | Mailchimp minutes | modelled minutes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        model = size.get("model", {})
        lines.append(
            f"| {size['accounts']:,} | {_num(model.get('exact_calls'))} |"
            f" {_num(model.get('exact_calls_per_1k_accounts'), 2)} |"
            f" {_num(model.get('exact_minutes_at_60_per_min'))} |"
            f" {_num(model.get('exact_days_of_5000_budget'), 2)} |"
            f" {_num(model.get('accounts_per_daily_budget'))} |"
            f" {_num(model.get('mailchimp_calls'))} |"
            f" {_num(model.get('mailchimp_minutes_at_10_connections'))} |"
            f" {_num(model.get('modelled_minutes'))} |")
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- bench/run: scale table begin -->"
README_END = "<!-- bench/run: scale table end -->"


def with_table(readme: str, table: str) -> str:
    """The README with the text between its scale-table markers replaced by `table`."""
    head, begin, rest = readme.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"the README has no {README_BEGIN} … {README_END} block")
    return f"{head}{begin}\n{table}{end}{tail}"
