"""The webhook receiver, a real process, attacked over sockets.

Each case ends with Mailchimp equal to the independent expectation from Exact's rows, consent
kept, and no secret in any file; `Outcome.report()` says what differs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.cases import CI_CASES, by_name, play_case
from reliability.stage import Factories

CASES = [name for name in CI_CASES if by_name(name).group == "webhook"]


@pytest.mark.parametrize("name", CASES)
def test_case(name: str, factories: Factories, tmp_path: Path) -> None:
    outcome = play_case(by_name(name), factories, tmp_path)
    assert outcome.clean, outcome.report()
