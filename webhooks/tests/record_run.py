"""A test trigger command: appends `start` and `end` lines to a file, sleeping in between.

    python record_run.py FILE [SLEEP_SECONDS] [FAIL_FIRST_N] [GATE_FILE]
The first FAIL_FIRST_N runs exit 1 (counted by the `start` lines already in the file). With
GATE_FILE, a run also lasts until that file exists (at most 60 s): a test ends it when it is
done, instead of racing a fixed sleep on a busy machine.
"""

import sys
import time
from pathlib import Path

path = Path(sys.argv[1])
sleep = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
fail_first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
gate = Path(sys.argv[4]) if len(sys.argv) > 4 else None
previous = path.read_text().count("start") if path.exists() else 0
with path.open("a") as handle:
    handle.write("start\n")
time.sleep(sleep)
deadline = time.monotonic() + 60
while gate is not None and not gate.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
with path.open("a") as handle:
    handle.write("end\n")
sys.exit(1 if previous < fail_first else 0)
