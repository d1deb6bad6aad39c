"""Issue 9: the mapper's speed-ups change nothing it sends.

A fixed capture of the tap's full sync of a small seeded company (`data/make_capture.py`) goes
through the mapper's own executable; its stdout must be byte for byte the golden output made
by the mapper before the speed-ups. Then the same capture again, opened by the echo of the
last STATE forwarded (a rerun the target confirmed): nothing is re-sent. On PostgreSQL (the
in-process mapper, its messages as a target parses them) the records are the same too.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mapper_test_kit import Runner

DATA = Path(__file__).parent / "data"
EXECUTABLE = Path(sys.executable).parent / "mapper-exact-mailchimp"


def capture() -> bytes:
    return gzip.decompress((DATA / "seeded-company.tap.jsonl.gz").read_bytes())


def golden(name: str) -> bytes:
    return gzip.decompress((DATA / f"seeded-company.{name}.jsonl.gz").read_bytes())


def run_executable(config: dict[str, Any], tmp_path: Path, lines: bytes) -> bytes:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "MELTANO_SYS_DIR_ROOT": str(tmp_path / "sys"),
           "PYTHONUNBUFFERED": "1"}  # as services often run it (stdout is buffered anyway)
    env.pop("EXACTMC_DATABASE_URL", None)
    done = subprocess.run([str(EXECUTABLE), "--config", str(config_file)], input=lines,
                          capture_output=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stdout


def echo_of_last_state(output: bytes) -> bytes:
    states = [line for line in output.splitlines() if json.loads(line)["type"] == "STATE"]
    return states[-1] + b"\n"


def test_output_is_byte_for_byte_the_golden_one(tmp_path: Path) -> None:
    config = {"lookup_store_path": str(tmp_path / "lookup.sqlite")}
    first = run_executable(config, tmp_path, capture())
    assert first == golden("mapped")
    rerun = run_executable(config, tmp_path, echo_of_last_state(first) + capture())
    assert rerun == golden("rerun")


def test_same_records_on_postgresql(run_mapper: Runner, mapper_postgres_url: str) -> None:
    messages = [json.loads(line) for line in capture().splitlines()]
    out = run_mapper(messages, store_url=mapper_postgres_url, store_namespace="same_output")
    assert out == [json.loads(line) for line in golden("mapped").splitlines()]


def test_records_are_buffered_until_a_state_even_with_pythonunbuffered() -> None:
    # Issue 9: with -u every record was its own write system call (56,481 at 10k accounts).
    # Records wait for their STATE anyway; the golden runs above use -u too.
    probe = ("import sys; from mapper_exact_mailchimp.writer import StateFlushingWriter as W;"
             "W(); print(sys.stdout.write_through, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=True)
    assert done.stderr.decode().strip() == "False"
