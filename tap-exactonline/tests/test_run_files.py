"""The plugins read Meltano's run files whole while another run rewrites them: the tap's state
and catalog, and every plugin's config (secret_store.run_files)."""

from __future__ import annotations

import json
import threading

from tap_exactonline.tap import TapExactOnline


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
