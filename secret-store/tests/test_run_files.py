"""Run files read whole even while another run rewrites them (issue 7, item 10: the same job
started twice, and two companies' jobs side by side; Meltano rewrites `.meltano/run/<plugin>/`)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from secret_store.run_files import read_settled, read_settled_json, settled

CATALOG = {"streams": [{"tap_stream_id": "accounts", "stream": "accounts",
                        "schema": {"type": "object", "properties": {}}, "metadata": []}]}


def test_an_emptied_file_is_read_once_it_is_whole_again(tmp_path):
    path = tmp_path / "tap.properties.json"
    path.write_text("")  # truncated by another run's discovery, output still to come
    rewrite = threading.Timer(0.5, lambda: path.write_text(json.dumps(CATALOG)))
    rewrite.start()
    started = time.monotonic()

    assert read_settled_json(path) == CATALOG

    # Waited for the rewrite (0.5 s), and returned once it parsed, not at the 15 s settle end.
    assert 0.4 < time.monotonic() - started < 14
    rewrite.join()


def test_a_file_that_stays_broken_still_fails(tmp_path):
    path = tmp_path / "tap.properties.json"
    path.write_text('{"streams": [')
    with pytest.raises(ValueError):
        read_settled_json(path, settle_seconds=0.3)
    path.write_text("[]")
    with pytest.raises(ValueError, match="no JSON object"):
        read_settled_json(path, settle_seconds=0.3)


def test_any_reader_is_retried_until_it_reads(tmp_path):
    path = tmp_path / "config.json"  # not there yet: deleted and written again
    threading.Timer(0.3, lambda: path.write_text('{"a": 1}')).start()
    assert read_settled(lambda: json.loads(path.read_text())) == {"a": 1}


def test_streams_without_a_path_pass_through():
    assert settled(None) is None
