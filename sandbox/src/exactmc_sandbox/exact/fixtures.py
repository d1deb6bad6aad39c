"""pytest fixtures: `exact_sandbox` (small seeded simulator on a free port) and a factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from exactmc_sandbox.common import started_sandboxes
from exactmc_sandbox.exact.sandbox import ExactSandbox

__all__ = ["exact_sandbox", "exact_sandbox_factory"]

ExactSandboxFactory = Callable[..., ExactSandbox]


@pytest.fixture
def exact_sandbox_factory() -> Iterator[ExactSandboxFactory]:
    """Call with `ExactSandbox` options; every sandbox started is stopped at teardown."""
    with started_sandboxes(ExactSandbox) as start:
        yield start


@pytest.fixture
def exact_sandbox(exact_sandbox_factory: ExactSandboxFactory) -> ExactSandbox:
    return exact_sandbox_factory()
