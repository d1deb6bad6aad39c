"""End-to-end fixtures: both sandboxes in this process, the pipeline through `meltano run`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_pipeline import MELTANO, ROOT, Pipeline, make_pipeline


@pytest.fixture(scope="session")
def meltano_plugins() -> None:
    """Install the plugins' virtualenvs once (editable, so later code changes need no reinstall).

    Once per test run, also under pytest-xdist: a second worker's `meltano install` would
    rebuild the virtualenvs under the first worker's running plugins. The first worker installs
    under the lock and leaves the run's id; the others find it and go on.
    """
    from filelock import FileLock

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    marker = ROOT / ".meltano" / "installed-for-test-run"
    marker.parent.mkdir(exist_ok=True)
    with FileLock(str(marker) + ".lock"):
        if run_id and marker.exists() and marker.read_text() == run_id:
            return
        result = subprocess.run(
            [str(MELTANO), "install"], cwd=ROOT, capture_output=True, text=True, check=False,
            env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        marker.write_text(run_id)


@pytest.fixture
def pipeline(
    meltano_plugins: None, exact_sandbox_factory: Any, mailchimp_sandbox_factory: Any,
    tmp_path: Path,
) -> Pipeline:
    return make_pipeline(
        exact_sandbox_factory(accounts_per_division=25, seed=7), mailchimp_sandbox_factory(),
        tmp_path,
    )
