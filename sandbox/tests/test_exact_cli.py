"""`exactmc-sandbox exact` as a process: prints where it is, never the secret, and serves."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60  # a busy machine starts a process slowly
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sandbox exited"
        try:
            requests.get(f"{url}/_sandbox/calls", timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("the sandbox did not come up")


def test_cli_serves_and_keeps_the_secret_out_of_its_output():
    port = _free_port()
    secret = "cli-secret-4f9a2b7c"
    process = subprocess.Popen(
        [sys.executable, "-m", "exactmc_sandbox.cli", "exact", "--port", str(port),
         "--client-id", "cli-client", "--client-secret", secret, "--seed", "3",
         "--accounts-per-division", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        grant = requests.post(f"{url}/_sandbox/oauth/grant", timeout=10,
                              json={"client_id": "cli-client", "region": "nl"})
        tokens = requests.post(f"{url}/nl/api/oauth2/token", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": grant.json()["refresh_token"],
            "client_id": "cli-client", "client_secret": secret})
        assert tokens.status_code == 200
        accounts = requests.get(f"{url}/nl/api/v1/101/crm/Accounts", timeout=10, headers={
            "Accept": "application/json",
            "Authorization": f"Bearer {tokens.json()['access_token']}"})
        assert len(accounts.json()["d"]["results"]) == 5
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=10)
    assert url in stdout and "cli-client" in stdout
    assert secret not in stdout + stderr
