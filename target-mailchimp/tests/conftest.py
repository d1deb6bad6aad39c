"""Shared fixtures for the target's tests (helpers live in target_mailchimp.testing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from target_mailchimp.testing import base_config


@pytest.fixture

def config(mailchimp_sandbox: Any, tmp_path: Path) -> dict[str, Any]:
    return base_config(mailchimp_sandbox, tmp_path)
