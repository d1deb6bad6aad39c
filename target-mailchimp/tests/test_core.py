"""singer-sdk's standard target tests, against a sandbox started for this module.

The standard suite feeds its own sample streams (`test_...`, `array_data`...), which are not
target streams: they run with `unknown_streams: ignore`, our documented choice for such input.
A separate test proves the default (`error`) refuses them before anything is written.
"""

from __future__ import annotations

import atexit
import tempfile

import pytest
from exactmc_sandbox.mailchimp import MailchimpSandbox
from singer_sdk.testing import get_target_test_class
from target_mailchimp.target import TargetMailchimp
from target_mailchimp.testing import run_target, stream

# The class-based suite cannot use function fixtures, so one sandbox serves the module.
SANDBOX = MailchimpSandbox()
SANDBOX.start()
atexit.register(SANDBOX.stop)
AUDIT_DIR = tempfile.mkdtemp(prefix="target-mailchimp-core-")

CONFIG = {
    "api_key": SANDBOX.api_key,
    "base_url": SANDBOX.api_base,
    "list_id": SANDBOX.list_id,
    "audit_store_url": f"sqlite:///{AUDIT_DIR}/audit.sqlite",
    "unknown_streams": "ignore",
}

TestTargetMailchimp = get_target_test_class(TargetMailchimp, config=CONFIG)


def test_unknown_stream_is_refused_by_default(tmp_path):
    config = {**CONFIG, "unknown_streams": "error",
              "audit_store_url": f"sqlite:///{tmp_path}/a.sqlite"}
    SANDBOX.reset_calls()
    with pytest.raises(ValueError, match="does not know the stream 'people'"):
        run_target(config, [{"type": "SCHEMA", "stream": "people",
                             "schema": {"properties": {"email": {"type": "string"}}},
                             "key_properties": ["email"]}])
    assert SANDBOX.calls()["total"] == 0


def test_known_and_ignored_streams_mix(tmp_path):
    config = {**CONFIG, "audit_store_url": f"sqlite:///{tmp_path}/a.sqlite"}
    run_target(config, [
        {"type": "SCHEMA", "stream": "noise", "schema": {"properties": {"a": {"type": "string"}}},
         "key_properties": []},
        {"type": "RECORD", "stream": "noise", "record": {"a": "x"}},
        *stream("members", [{"email": "mixed@example.com"}]),
    ])
    assert any(m["email_address"] == "mixed@example.com" for m in SANDBOX.members())
