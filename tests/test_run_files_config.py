"""Every plugin reads the config file Meltano wrote once it is whole: with two companies' jobs
started side by side a target once read it cut off at 100 bytes (secret_store.run_files)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from mapper_exact_mailchimp.mapper import ExactToMailchimpMapper
from tap_exactonline.tap import TapExactOnline
from target_mailchimp.target import TargetMailchimp

PLUGINS = {"tap": TapExactOnline, "mapper": ExactToMailchimpMapper, "target": TargetMailchimp}


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_each_plugin_reads_its_config_once_it_is_whole(tmp_path: Path, plugin: str) -> None:
    config = {"client_id": "x", "list_id": "L1", "base_url": "http://127.0.0.1:9/3.0"}
    path, text = tmp_path / "config.json", json.dumps(config, indent=2)
    path.write_text(text[:len(text) // 2])  # cut off, as Meltano rewrites it
    rewrite = threading.Timer(0.3, lambda: path.write_text(text))
    rewrite.start()
    context = PLUGINS[plugin].get_singer_command().make_context(
        plugin, ["--config", str(path), "--about"])
    rewrite.join()
    assert context.params["config"].config == config
