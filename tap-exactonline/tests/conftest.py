"""Shared helpers: configs pointing at the Exact sandbox, and in-process / subprocess tap runs.

The `exact_sandbox` / `exact_sandbox_factory` fixtures come from the sandbox's pytest plugin.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from secret_store import generate_key
from tap_exactonline.tap import TapExactOnline

TAP_EXE = str(Path(sys.executable).with_name("tap-exactonline"))

# The sandbox's werkzeug request log is noise in test output.
logging.getLogger("werkzeug").setLevel(logging.ERROR)


def make_config(sandbox: Any, store_dir: Path, region: str = "nl", **overrides: Any) -> dict:
    """A config for `sandbox` with a fresh bootstrap token and fast retry settings."""
    config = {
        "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret,
        "refresh_token": sandbox.issue_refresh_token(region),
        "base_url": sandbox.base_url(region),
        "token_store_path": str(store_dir),
        "token_store_key": generate_key(),
        "retry_initial_wait": 0.05,
        "max_retries": 3,
        "request_timeout": 5,
        "token_timeout": 5,
    }
    config.update(overrides)
    return config


@dataclass
class TapRun:
    messages: list[dict[str, Any]]
    logs: str = ""
    returncode: int = 0
    stdout: str = ""

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages
                if m["type"] == "RECORD" and m["stream"] == stream]

    @property
    def counts(self) -> Counter[str]:
        return Counter(m["stream"] for m in self.messages if m["type"] == "RECORD")

    @property
    def state(self) -> dict[str, Any]:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}

    def bookmark(self, stream: str, division: int) -> dict[str, Any]:
        for partition in self.state["bookmarks"][stream]["partitions"]:
            if partition["context"] == {"division": division}:
                return partition
        raise KeyError((stream, division))


def _run_tap(config: dict, state: dict | None = None, select: list[str] | None = None) -> TapRun:
    """Run the tap in this process (real HTTP to the sandbox) and collect its messages."""
    catalog = None
    if select is not None:
        discovered = TapExactOnline(config=config, validate_config=False).catalog_dict
        for entry in discovered["streams"]:
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == []:
                    meta["metadata"]["selected"] = entry["tap_stream_id"] in select
        catalog = discovered
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        # A copy: the SDK updates the state it is given in place.
        tap = TapExactOnline(config=config, state=copy.deepcopy(state or {}), catalog=catalog)
        tap.sync_all()
    messages = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return TapRun(messages)


def _run_tap_process(config_path: Path, state_path: Path | None = None,
                    timeout: float = 120) -> TapRun:
    """Run the `tap-exactonline` executable, as Meltano would."""
    args = [TAP_EXE, "--config", str(config_path)]
    if state_path is not None:
        args += ["--state", str(state_path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return TapRun(messages, logs=proc.stderr, returncode=proc.returncode, stdout=proc.stdout)


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


@pytest.fixture
def config_for(tmp_path: Path):
    """`config_for(sandbox, region="nl", **overrides)` with a store under tmp_path."""

    def build(sandbox: Any, region: str = "nl", **overrides: Any) -> dict:
        return make_config(sandbox, tmp_path / "store", region, **overrides)

    return build


@pytest.fixture
def run_tap():
    """`run_tap(config, state=None, select=None) -> TapRun`, in this process."""
    return _run_tap


@pytest.fixture
def run_tap_process():
    """`run_tap_process(config_path, state_path=None) -> TapRun`, the real executable."""
    return _run_tap_process
