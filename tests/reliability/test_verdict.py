"""The judge itself can fail: after one clean run, each kind of damage is counted."""

from __future__ import annotations

import base64
from pathlib import Path

from exactmc_sandbox.mailchimp.state import Segment

from reliability.audience_history import seed_audience_history
from reliability.stage import Factories, new_stage


def test_every_kind_of_damage_is_counted(factories: Factories, tmp_path: Path) -> None:
    stage = new_stage("verdict", factories, tmp_path)
    overlay = seed_audience_history(stage)
    stage.run()
    assert stage.outcome().clean, stage.outcome().report()

    mailchimp = stage.mailchimp
    by_status = {status: email for email, status in overlay.items()}
    mailchimp.set_member_status(by_status["unsubscribed"], "subscribed")  # consent slip
    mailchimp.set_member_status(by_status["archived"], "transactional")  # archived restored
    members = stage.pipeline.members()
    excluded = next(e for e, m in members.items() if m["status"] == "unsubscribed"
                    and e not in overlay)
    mailchimp.set_member_status(excluded, "subscribed")  # excluded in Exact, now subscribed
    plain = next(e for e, m in members.items() if m["status"] == "transactional"
                 and e not in overlay)
    mailchimp.set_member_status(plain, "archived")  # lost
    state = mailchimp.context.state
    with state.lock:
        orders = state.stores["exact-online"].orders
        gone, changed, recounted = sorted(orders)[:3]
        del orders[gone]  # lost
        # The sandbox holds orders packed: a changed order is written back (issue 9).
        order = orders[changed]
        order["order_total"] += 1  # wrong: not Exact's amount
        orders[changed] = order
        order = orders[recounted]
        order["lines"][0]["quantity"] += 1  # wrong: lines no longer add up
        orders[recounted] = order
        audience = state.lists[mailchimp.list_id]
        name = next(iter(audience.segments.values())).name
        audience.segments[99999] = Segment(99999, name.upper(), "", "")  # duplicated tag
    (stage.pipeline.workdir / "leak.txt").write_bytes(
        b"x" + base64.b64encode(b"k" + mailchimp.api_key.encode()))  # a secret, base64

    outcome = stage.outcome()
    assert outcome.resubscribed == 3, outcome.report()
    assert outcome.lost == 2, outcome.report()
    assert outcome.wrong == 2, outcome.report()
    assert outcome.duplicated == 1, outcome.report()
    assert outcome.secrets_found >= 1, outcome.report()
