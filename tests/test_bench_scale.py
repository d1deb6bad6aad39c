"""The scale benchmark (`bench/run`, issue 9): its model and table, and (opt-in, `BENCH_SMOKE=1`
or `BENCH_SMOKE=<accounts>`) the harness itself end to end at a small size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_pipeline import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from scale import count_records, parse_size, profile_summary
from scale_measure import Timed, least
from scale_report import (
    README_BEGIN,
    README_END,
    markdown,
    model_real_limits,
    stage_figures,
    with_table,
)


def test_model_under_the_real_limits_from_counts() -> None:
    # The figure: ≈8.9 Exact calls per 1,000 customers → one day's budget ≈560k.
    model = model_real_limits(100_000, 890, 1_200, pipeline_cpu_s=300)
    assert model["exact_calls_per_1k_accounts"] == 8.9
    assert model["accounts_per_daily_budget"] == 561_798
    assert model["exact_minutes_at_60_per_min"] == 14.8
    assert model["exact_days_of_5000_budget"] == 0.178
    assert model["mailchimp_minutes_at_10_connections"] == 0.6  # 1,200 × 0.3 s / 10
    assert model["modelled_minutes"] == 14.8  # the slowest bound: Exact's 60 a minute


def test_stage_ratio_is_cpu_over_the_floors_cpu() -> None:
    stage = stage_figures(records=30_000, wall=15.0, cpu=12.0, peak_rss=200 * 1024 * 1024,
                          floor_cpu=0.8)
    assert stage == {"records": 30_000, "wall_s": 15.0, "cpu_s": 12.0, "cpu_s_runs": [12.0],
                     "records_per_s": 2000, "cpu_s_per_1k": 0.4, "x_floor": 15.0,
                     "peak_rss_mb": 200}


def test_repeated_runs_count_their_least_time_and_highest_memory() -> None:
    runs = [Timed(0, 9.0, 4.4, 100), Timed(0, 8.0, 4.9, 120), Timed(0, 8.5, 4.1, 110)]
    assert least(runs) == Timed(0, 8.0, 4.1, 120)
    assert least([*runs, Timed(3, 1.0, 1.0, 1)]).returncode == 3  # a failure is not hidden
    stage = stage_figures(1000, 8.0, 4.1, 0, 1.0, [r.cpu for r in runs])
    table = markdown({"sizes": {"1": {"accounts": 1000, "end_to_end": {},
                                      "stages": {"mapper": stage}}}})
    assert "| 1,000 | mapper | 1,000 | 8.0 | 4.1 | 4.4 / 4.9 / 4.1 | 4.100 |" in table


def test_table_shows_each_size_and_an_unfinished_run(tmp_path: Path) -> None:
    results = {"command": "bench/run --sizes 3k,100k", "machine": "test", "sizes": {
        "100000": {"accounts": 100_000, "end_to_end": {"first_sync": {
            "wall_s": 1800.0, "cpu_s": 900.0, "finished": False}}},
        "3000": {"accounts": 3_000, "sandbox_cpu_share_pct": 12.5,
                 "end_to_end": {"first_sync": {"wall_s": 30.0, "cpu_s": 20.0, "finished": True,
                                               "peak_rss_mb": {"tap": 60, "target": 80}},
                                "incremental_10": {"wall_s": 5.0, "mailchimp_calls": 13},
                                "incremental_empty": {"exact_calls": 20}},
                 "stages": {"tap": stage_figures(5000, 2.0, 1.0, 50 * 1024 * 1024, 0.1)},
                 "model": model_real_limits(3000, 30, 300, 20)}}}
    table = markdown(results)
    rows = [line for line in table.splitlines() if line.startswith("| 3,000 |")]
    assert len(rows) == 3  # end to end, the tap stage, the model
    assert "| 3,000 | 30 | 20 | 12 % | 5.0 / 13 | 20 |" in rows[0]
    assert "| 100,000 | 1,800 (did not finish) |" in table
    assert table.index("| 3,000 |") < table.index("| 100,000 |")


def test_table_shows_how_flat_cpu_per_record_stays() -> None:
    def size(accounts: int, tap_cpu: float, mapper_cpu: float) -> dict:
        return {"accounts": accounts, "end_to_end": {}, "stages": {
            "tap": stage_figures(accounts * 10, 1.0, tap_cpu, 0, 1.0),
            "mapper": stage_figures(accounts * 10, 1.0, mapper_cpu, 0, 1.0)}}

    table = markdown({"sizes": {"1": size(10_000, 4.0, 9.0), "2": size(30_000, 12.0, 36.0)}})
    assert "largest size over smallest (goal within ±25 %): tap 1.00×, mapper 1.33×." in table


def test_exact_calls_per_more_rows_leave_out_what_every_size_calls() -> None:
    def size(accounts: int, rows: int, calls: int) -> dict:
        return {"accounts": accounts, "end_to_end": {},
                "calls": {"rows_read": rows, "exact_first_sync": calls}}

    # 99 calls for 85,444 rows is 1.16 per 1k; 773 more for 771,104 more rows is 1.00.
    table = markdown({"sizes": {"a": size(100_000, 856_548, 872), "b": size(10_000, 85_444, 99)}})
    assert "Exact calls per 1,000 more rows read, smallest size to largest: 1.00" in table
    assert "more rows read" not in markdown({"sizes": {"b": size(10_000, 85_444, 99)}})


def test_sizes_and_record_counts(tmp_path: Path) -> None:
    assert [parse_size(s) for s in ("10k", "30K", "100_000", "3000", "1.5k")] == [
        10_000, 30_000, 100_000, 3_000, 1_500]
    lines = tmp_path / "out.jsonl"
    lines.write_text('{"type":"SCHEMA","stream":"a"}\n{"type":"RECORD","stream":"a"}\n'
                     '{"type": "RECORD", "stream": "a"}\n{"type":"STATE","value":{}}\n')
    assert count_records(lines) == 2


def test_readme_block_is_replaced_and_nothing_else() -> None:
    readme = f"# T\n## Performance\nintro\n{README_BEGIN}\nold\n{README_END}\nafter\n"
    assert with_table(readme, "new\n") == (
        f"# T\n## Performance\nintro\n{README_BEGIN}\nnew\n{README_END}\nafter\n")
    with pytest.raises(ValueError):
        with_table("# no block\n", "new\n")


def test_profile_summary_counts_calls_and_ranks_own_time(tmp_path: Path) -> None:
    import cProfile

    def busy() -> int:
        return sum(i * i for i in range(200_000))

    profiler = cProfile.Profile()
    profiler.runcall(lambda: [busy() for _ in range(3)])
    profiler.dump_stats(tmp_path / "p.prof")
    summary = profile_summary(tmp_path / "p.prof", top=3)
    assert summary["total_calls"] > 600_000
    top = summary["top_own_time"]
    assert len(top) == 3 and top[0]["own_s"] >= top[1]["own_s"] >= top[2]["own_s"]
    assert any("busy" in row["function"] or "genexpr" in row["function"] for row in top)


SMOKE = os.environ.get("BENCH_SMOKE")


@pytest.mark.skipif(not SMOKE, reason="the harness end to end: BENCH_SMOKE=1 (3,000 accounts)")
def test_bench_run_measures_every_part(meltano_plugins: None, tmp_path: Path) -> None:
    accounts = 3000 if SMOKE in ("1", "true", "yes") else int(SMOKE or 0)
    results = tmp_path / "scale.json"
    done = subprocess.run(
        [str(ROOT / "bench" / "run"), "--sizes", str(accounts), "--timeout", "300",
         "--results", str(results), "--workdir", str(tmp_path / "work"), "--repeat", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    size = json.loads(results.read_text())["sizes"][str(accounts)]
    print(json.dumps(size, indent=1)[:6000])  # shown when an assertion below fails
    first = size["end_to_end"]["first_sync"]
    assert first["finished"] and first["returncode"] == 0
    assert {"meltano", "tap", "mapper", "target"} <= set(first["peak_rss_mb"])
    assert set(size["sandbox_peak_rss_mb"]) >= {"exact", "mailchimp"}
    assert all(size["sandbox_peak_rss_mb"].values())
    calls = size["calls"]
    assert calls["rows_read"] > accounts and calls["outputs"] > 0
    # The target alone on the mapper's output builds the audience the whole job built.
    assert calls["members_end_to_end"] == calls["members_target_alone"] > 0
    assert calls["exact_per_1k_rows"] > 0 and calls["mailchimp_per_1k_outputs"] > 0
    assert size["end_to_end"]["incremental_10"]["mailchimp_calls"] > 0
    assert calls["exact_empty_incremental"] > 0
    for name in ("tap", "mapper", "target"):
        stage = size["stages"][name]
        assert stage["returncode"] == 0 and stage["records"] > 0 and stage["x_floor"] > 1
        assert stage["peak_rss_mb"] > 20
        assert len(stage["cpu_s_runs"]) == 2 and stage["cpu_s"] == min(stage["cpu_s_runs"])
    assert 0 < size["sandbox_cpu_share_pct"] < 100
    assert size["model"]["exact_calls"] == first["exact_calls"]
    assert f"| {accounts:,} |" in results.with_suffix(".md").read_text()
