"""pytest fixtures: `mailchimp_sandbox` and `mailchimp_sandbox_factory` (function scope)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from exactmc_sandbox.common import started_sandboxes
from exactmc_sandbox.mailchimp.sandbox import MailchimpSandbox

__all__ = ["mailchimp_sandbox", "mailchimp_sandbox_factory"]


@pytest.fixture
def mailchimp_sandbox_factory() -> Iterator[Callable[..., MailchimpSandbox]]:
    """Start sandboxes with custom options (see MailchimpSandbox); all stop at teardown."""
    with started_sandboxes(MailchimpSandbox) as start:
        yield start


@pytest.fixture
def mailchimp_sandbox(
    mailchimp_sandbox_factory: Callable[..., MailchimpSandbox],
) -> MailchimpSandbox:
    """A fresh simulator on a free port with a random API key and an empty audience."""
    return mailchimp_sandbox_factory()
