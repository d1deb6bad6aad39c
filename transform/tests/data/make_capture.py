"""Regenerate `seeded-company.tap.jsonl.gz`: the tap's full sync of a small seeded company.

    .venv/bin/python transform/tests/data/make_capture.py

The Exact sandbox as the scale benchmark seeds it (seed 42, 20 accounts per division, 3
divisions), the tap run alone into a file. The golden output beside it
(`seeded-company.mapped.jsonl.gz`) is the mapper's output on that capture, made once with the
mapper before its issue 9 speed-ups: `test_same_output.py` holds every later mapper to it.
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))

from scale import Bench  # noqa: E402
from scale_measure import run_timed  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="capture-"))
    bench = Bench(60, workdir, timeout=300)
    try:
        bench.start()
        config = bench.dump_config("tap-exactonline")
        out = workdir / "tap.jsonl"
        run_timed(bench.stage_command("tap", config), None, out, workdir / "tap.log", bench.env,
                  300)
        packed = gzip.compress(out.read_bytes(), mtime=0)  # the same bytes every time
        (HERE / "seeded-company.tap.jsonl.gz").write_bytes(packed)
    finally:
        bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
