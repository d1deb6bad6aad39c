"""End-to-end fixtures: both sandboxes in this process, the pipeline through `meltano run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_pipeline import Pipeline, install_plugins_once, make_pipeline


@pytest.fixture(scope="session")
def meltano_plugins() -> None:
    """Install the plugins' virtualenvs once (editable, so later code changes need no reinstall)."""
    install_plugins_once()


@pytest.fixture
def pipeline(
    meltano_plugins: None, exact_sandbox_factory: Any, mailchimp_sandbox_factory: Any,
    tmp_path: Path,
) -> Pipeline:
    return make_pipeline(
        exact_sandbox_factory(accounts_per_division=25, seed=7), mailchimp_sandbox_factory(),
        tmp_path,
    )
