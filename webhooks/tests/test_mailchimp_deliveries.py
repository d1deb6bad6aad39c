"""Mailchimp list webhooks through the service: the sandbox's real deliveries, stored once."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import requests
from exactmc_webhooks.cli import main


def add_member(sandbox, email: str) -> None:
    answer = requests.post(f"{sandbox.api_base}/lists/{sandbox.list_id}/members",
                           json={"email_address": email, "status": "subscribed"},
                           auth=("any", sandbox.api_key), timeout=10)
    assert answer.ok, answer.text


def register(sandbox, url: str) -> None:
    answer = requests.post(f"{sandbox.api_base}/lists/{sandbox.list_id}/webhooks",
                           json={"url": url}, auth=("any", sandbox.api_key), timeout=30)
    assert answer.ok, answer.text  # the sandbox validated the URL with a GET first


def post_form(url: str, fields: dict[str, str]) -> requests.Response:
    """A delivery as Mailchimp sends it: form-encoded."""
    return requests.post(url, data=urlencode(fields).encode(), timeout=5,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})


UNSUBSCRIBE = {"type": "unsubscribe", "fired_at": "2026-11-27 10:00:00",
               "data[email]": "Anna@Example.com", "data[list_id]": "l1",
               "data[reason]": "manual"}


def test_an_unsubscribe_in_mailchimp_is_stored_and_starts_the_way_back(
    mailchimp_sandbox, make_service
):
    running = make_service()
    add_member(mailchimp_sandbox, "Anna.Jansen@Example.com")
    register(mailchimp_sandbox, running.mailchimp_url)

    mailchimp_sandbox.set_member_status("anna.jansen@example.com", "unsubscribed")

    assert running.wait_for(lambda: running.mailchimp_log() == ["start", "end"])
    [event] = running.mailchimp_inbox()
    assert (event["type"], event["email"], event["list_id"]) == (
        "unsubscribe", "anna.jansen@example.com", mailchimp_sandbox.list_id)
    assert event["fired_at"].endswith("Z") and "T" in event["fired_at"]
    assert [d["status"] for d in mailchimp_sandbox.webhook_deliveries()] == [200]
    assert running.exact_log() == []  # the forward job is not started by Mailchimp events


def test_the_mailchimp_url_command_prints_one_stable_secret_url(make_service, capsys):
    running = make_service()
    config_path = running.service_config_path
    assert main(["mailchimp-url", "--config", str(config_path),
                 "--base", "https://hooks.example.com/"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == f"https://hooks.example.com/mailchimp/{running.service.mailchimp_secret}"
    assert len(running.service.mailchimp_secret) >= 40
    assert running.service.mailchimp_secret not in config_path.read_text()  # only in the store


def test_repeats_and_non_triggering_events_are_stored_once_and_start_nothing(make_service):
    running = make_service()
    profile = {**UNSUBSCRIBE, "type": "profile"}
    for _ in range(3):
        assert post_form(running.mailchimp_url, profile).status_code == 200
    changed = {"type": "upemail", "fired_at": "2026-11-27 10:00:01",
               "data[old_email]": "old@example.com", "data[new_email]": "New@example.com"}
    assert post_form(running.mailchimp_url, changed).status_code == 200
    time.sleep(1.5)
    assert [(e["type"], e.get("email"), e.get("new_email")) for e in running.mailchimp_inbox()
            ] == [("profile", "anna@example.com", None), ("upemail", None, "new@example.com")]
    assert running.mailchimp_log() == []

    assert post_form(running.mailchimp_url, UNSUBSCRIBE).status_code == 200
    assert post_form(running.mailchimp_url, UNSUBSCRIBE).text.strip() == (
        "already recorded")
    assert running.wait_for(lambda: running.mailchimp_log() == ["start", "end"])


def test_a_wrong_secret_is_404_and_stores_nothing(make_service):
    running = make_service()
    secret = running.service.mailchimp_secret
    for wrong in ("", "x", secret[:-1], secret + "x", secret.upper()):
        url = f"{running.service.url}/mailchimp/{wrong}"
        assert post_form(url, UNSUBSCRIBE).status_code == 404
        assert requests.get(url, timeout=5).status_code == 404
    assert requests.get(running.mailchimp_url, timeout=5).status_code == 200  # validation
    time.sleep(1)
    assert running.mailchimp_inbox() == []
    assert running.mailchimp_log() == []


def test_malformed_deliveries_are_400_and_store_nothing(make_service):
    running = make_service()
    bad = [
        {**UNSUBSCRIBE, "type": "hacked"},
        {k: v for k, v in UNSUBSCRIBE.items() if k != "fired_at"},
        {**UNSUBSCRIBE, "fired_at": "yesterday"},
        {**UNSUBSCRIBE, "data[email]": "not an address"},
        {k: v for k, v in UNSUBSCRIBE.items() if k != "data[email]"},
        {"type": "upemail", "fired_at": "2026-11-27 10:00:00", "data[new_email]": "a@b.c"},
    ]
    for fields in bad:
        assert post_form(running.mailchimp_url, fields).status_code == 400, fields
    as_json = requests.post(running.mailchimp_url, json=UNSUBSCRIBE, timeout=5)
    assert as_json.status_code == 400
    not_a_form = requests.post(running.mailchimp_url, data=b"\xff\xfe&&==",
                               headers={"Content-Type": "application/x-www-form-urlencoded"},
                               timeout=5)
    assert not_a_form.status_code == 400
    time.sleep(1)
    assert running.mailchimp_inbox() == []
    assert running.mailchimp_log() == []


def test_the_receiver_limits_apply_to_mailchimp_too(make_service):
    running = make_service(webhook_max_body_bytes=1000)
    padded = {**UNSUBSCRIBE, "data[merges][FNAME]": "x" * 5000}
    assert post_form(running.mailchimp_url, padded).status_code == 413
    assert post_form(running.mailchimp_url, UNSUBSCRIBE).status_code == 200  # still serving
    assert [e["email"] for e in running.mailchimp_inbox()] == ["anna@example.com"]
