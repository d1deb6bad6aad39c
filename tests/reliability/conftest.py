"""Fixtures of the reliability suite: both sandbox factories, plugins installed."""

from __future__ import annotations

from typing import Any

import pytest

from reliability.stage import Factories


@pytest.fixture
def factories(meltano_plugins: None, exact_sandbox_factory: Any,
              mailchimp_sandbox_factory: Any) -> Factories:
    return exact_sandbox_factory, mailchimp_sandbox_factory
