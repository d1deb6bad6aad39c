"""The tap waits for a catalog file that another run's discovery is rewriting (issue 7, item 10)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from tap_exactonline.catalog_file import read_settled_catalog
from tap_exactonline.tap import TapExactOnline

CATALOG = {"streams": [{"tap_stream_id": "accounts", "stream": "accounts",
                        "schema": {"type": "object", "properties": {}}, "metadata": []}]}


def test_an_emptied_catalog_is_read_once_it_is_whole_again(tmp_path):
    path = tmp_path / "tap.properties.json"
    path.write_text("")  # truncated by another run's discovery, output still to come
    rewrite = threading.Timer(0.5, lambda: path.write_text(json.dumps(CATALOG)))
    rewrite.start()
    started = time.monotonic()

    assert read_settled_catalog(path) == CATALOG

    assert 0.4 < time.monotonic() - started < 5
    rewrite.join()


def test_a_catalog_that_stays_broken_still_fails(tmp_path):
    path = tmp_path / "tap.properties.json"
    path.write_text('{"streams": [')
    with pytest.raises(ValueError):
        read_settled_catalog(path, settle_seconds=0.3)


def test_the_tap_takes_its_catalog_through_the_wait(tmp_path):
    path = tmp_path / "tap.properties.json"
    discovered = TapExactOnline(config={"client_id": "x"}, validate_config=False).catalog_dict
    path.write_text(json.dumps(discovered)[:100])  # half written
    threading.Timer(0.3, lambda: path.write_text(json.dumps(discovered))).start()

    tap = TapExactOnline(config={"client_id": "x"}, catalog=str(path), validate_config=False)

    assert tap.input_catalog is not None
    assert sorted(tap.input_catalog) == sorted(s["tap_stream_id"] for s in discovered["streams"])
