"""An audience with a past: people who subscribed, unsubscribed, bounced or were archived in
Mailchimp before the first sync. The pipeline must keep every one of those choices."""

from __future__ import annotations

import requests

from reliability.stage import Stage
from reliability.verdict import expected_state

# The choices made in Mailchimp, in the order the candidates get them.
HISTORY = ("subscribed", "unsubscribed", "cleaned", "archived")


def seed_audience_history(stage: Stage) -> dict[str, str]:
    """Add four of Exact's people to the audience first, each with a status of HISTORY."""
    expected = expected_state(stage.exact, stage.divisions)
    candidates = sorted(
        email for email, status in expected.members.items()
        if status == "transactional" and email in expected.first_names and email.isascii()
    )
    mailchimp = stage.mailchimp
    overlay = dict(zip(candidates, HISTORY, strict=False))
    for email, status in overlay.items():
        answer = requests.post(
            f"{mailchimp.api_base}/lists/{mailchimp.list_id}/members",
            json={"email_address": email, "status": "subscribed"},
            auth=("reliability", mailchimp.api_key), timeout=30,
        )
        answer.raise_for_status()
        if status != "subscribed":
            mailchimp.set_member_status(email, status)
    mailchimp.reset_calls()
    stage.overlay = overlay
    return overlay
