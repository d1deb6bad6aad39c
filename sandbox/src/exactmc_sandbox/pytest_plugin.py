"""pytest fixtures for both simulators (registered through the `pytest11` entry point)."""

from exactmc_sandbox.exact.fixtures import *  # noqa: F403
from exactmc_sandbox.mailchimp.fixtures import *  # noqa: F403
