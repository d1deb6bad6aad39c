"""The real `exactmc-webhooks` executable, configured from the environment as Meltano does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from exactmc_webhooks.mailchimp_inbox import MailchimpInbox
from secret_store import generate_key

EXE = str(Path(sys.executable).with_name("exactmc-webhooks"))


def environment(tmp_path: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k != "EXACTMC_DATABASE_URL"}
    return {**inherited, "SECRET_STORE_KEY": generate_key(),
            "WEBHOOKS_SECRET_STORE_PATH": str(tmp_path / "secrets"),
            "MELTANO_SYS_DIR_ROOT": str(tmp_path / "sys"),  # no inbox setting: the default
            "WEBHOOKS_MAILCHIMP_TRIGGER_COMMAND": f"touch {tmp_path / 'triggered'}",
            "WEBHOOKS_DEBOUNCE_SECONDS": "0.2"}


def test_serve_from_env_receives_a_cleaned_address_and_triggers(tmp_path):
    env = environment(tmp_path)
    url = subprocess.run([EXE, "mailchimp-url", "--config", "ENV", "--base", "http://h"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    path = url.removeprefix("http://h")
    log = (tmp_path / "serve.out").open("w+")
    process = subprocess.Popen([EXE, "serve", "--config", "ENV", "--port", "0"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while "(http://" not in (tmp_path / "serve.out").read_text():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        base = (tmp_path / "serve.out").read_text().split("(http://")[1].split(")")[0]
        answer = requests.post(f"http://{base}{path}", timeout=5, data={
            "type": "cleaned", "fired_at": "2026-11-27 10:00:00", "data[email]": "a@b.nl"})
        assert answer.status_code == 200
        deadline = time.monotonic() + 10
        while not (tmp_path / "triggered").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        default = tmp_path / "sys" / "webhooks" / "inbox.sqlite"
        assert [e["email"] for e in MailchimpInbox(default).entries()] == ["a@b.nl"]
        assert default.stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    secret = path.rsplit("/", 1)[1]
    assert secret not in (tmp_path / "serve.out").read_text()  # never logged


def test_serve_without_any_secret_stops_with_a_clear_error(tmp_path):
    done = subprocess.run([EXE, "serve", "--config", "ENV", "--port", "0"],
                          env=environment(tmp_path), capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 1
    assert "No webhook secret in the store" in done.stderr


def test_an_empty_trigger_command_in_the_environment_turns_that_trigger_off(tmp_path,
                                                                           monkeypatch):
    from exactmc_webhooks.settings import load_config

    for name, value in environment(tmp_path).items():
        if name.startswith("WEBHOOKS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("WEBHOOKS_MAILCHIMP_TRIGGER_COMMAND", "")
    monkeypatch.setenv("WEBHOOKS_WEBHOOK_THREADS", "")  # empty number: its default
    config = load_config("ENV")
    assert config["mailchimp_trigger_command"] == ""
    assert config["trigger_command"] == (
        "env TAP_EXACTONLINE_SYNC_SCOPE=pending_webhooks meltano run exactonline-to-mailchimp")
    assert (config["webhook_threads"], config["debounce_seconds"]) == (4, 0.2)
