"""singer-sdk's standard tap tests against a sandbox started at import time.

The class-based suite cannot use function fixtures, so this module starts its own ExactSandbox.
"""

from __future__ import annotations

import atexit
import logging
import tempfile

from exactmc_sandbox.exact import ExactSandbox
from secret_store import generate_key
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from tap_exactonline.tap import TapExactOnline

logging.getLogger("werkzeug").setLevel(logging.ERROR)

SANDBOX = ExactSandbox(accounts_per_division=8)
SANDBOX.start()
atexit.register(SANDBOX.stop)
_STORE = tempfile.TemporaryDirectory(prefix="tap-exactonline-standard-")
atexit.register(_STORE.cleanup)

CONFIG = {
    "client_id": SANDBOX.client_id,
    "client_secret": SANDBOX.client_secret,
    "refresh_token": SANDBOX.issue_refresh_token("nl"),
    "base_url": SANDBOX.base_url("nl"),
    "divisions": [101, 102],
    "token_store_path": _STORE.name,
    "token_store_key": generate_key(),
    "start_date": "2020-01-01T00:00:00Z",
}

TestTapExactOnline = get_tap_test_class(
    TapExactOnline,
    config=CONFIG,
    suite_config=SuiteConfig(ignore_no_records_for_streams=["deletions"]),
)
