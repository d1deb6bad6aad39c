"""The tap waits for a state or catalog file that another run is rewriting (issue 7, item 10:
the same job started twice; Meltano shares `.meltano/run/<plugin>/` between runs)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from tap_exactonline.run_files import read_settled_json, settled
from tap_exactonline.tap import TapExactOnline

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


def test_the_tap_cli_reads_state_and_catalog_through_the_wait(tmp_path, monkeypatch):
    discovered = TapExactOnline(config={"client_id": "x"}, validate_config=False).catalog_dict
    catalog, state = tmp_path / "tap.properties.json", tmp_path / "state.json"
    bookmarks = {"bookmarks": {"accounts": {"partitions": []}}}
    catalog.write_text(json.dumps(discovered)[:100])  # half written
    state.write_text("")
    threading.Timer(0.3, lambda: (catalog.write_text(json.dumps(discovered)),
                                  state.write_text(json.dumps(bookmarks)))).start()
    seen = {}

    def fake_sync_all(tap: TapExactOnline) -> None:
        seen["catalog"], seen["state"] = tap.input_catalog, tap.state

    monkeypatch.setattr(TapExactOnline, "sync_all", fake_sync_all)
    monkeypatch.setattr(TapExactOnline, "_validate_config", lambda *_, **__: [])
    with catalog.open() as catalog_handle, state.open() as state_handle:
        TapExactOnline.invoke(catalog=catalog_handle, state=state_handle)

    assert sorted(seen["catalog"]) == sorted(s["tap_stream_id"] for s in discovered["streams"])
    assert seen["state"]["bookmarks"]["accounts"] == {"partitions": []}


def test_streams_without_a_path_pass_through():
    assert settled(None) is None
