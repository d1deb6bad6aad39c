"""Every CI case of the reliability catalogue (`cases.py`): kills at chosen calls then a rerun,
faults on both APIs, bad input, parallel jobs, attacks on the webhook receiver.

Each case ends with Mailchimp equal to the independent expectation from Exact's rows, consent
kept, and no secret in any file; `Outcome.report()` says what differs. Pick a group with
`-k kill` (or fault, input, parallel, webhook): the case names start with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.cases import CI_CASES, by_name, play_case
from reliability.stage import Factories


@pytest.mark.parametrize("name", CI_CASES)
def test_case(name: str, factories: Factories, tmp_path: Path) -> None:
    outcome = play_case(by_name(name), factories, tmp_path)
    assert outcome.clean, outcome.report()
