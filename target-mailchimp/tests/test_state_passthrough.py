"""A tap's STATE comes back out exactly, whatever numbers it holds.

singer-sdk reads every float as a Decimal and (up to 0.54.9) writes STATE with plain
`json.dumps`, so a tap with a fractional number in its state crashed the target at the end of
the run (meltano/sdk#3787). The target must work for any tap that feeds it.
"""

from __future__ import annotations

from target_mailchimp.testing import base_config, run_target, state, stream


def test_fractional_numbers_in_state_are_passed_through_exactly(mailchimp_sandbox, tmp_path):
    config = base_config(mailchimp_sandbox, tmp_path)
    tap_state = {"bookmarks": {"members": {"replication_key_value": 1732712345.125,
                                           "tiny": 0.1, "count": 3}}}
    out = run_target(config, [*stream("members", [{"email": "a@example.com"}]),
                              state(tap_state)])
    assert out[-1] == tap_state
    assert mailchimp_sandbox.members()[0]["email_address"] == "a@example.com"
