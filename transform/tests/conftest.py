"""Fixtures running the mapper in-process over Singer messages."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the builders module beside the tests

from mapper_exact_mailchimp.mapper import ExactToMailchimpMapper
from mapper_test_kit import CollectingWriter, Output, Runner, state, tap_run


@pytest.fixture
def mapper_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "lookup_store_path": str(tmp_path / "run" / "lookup.sqlite"),
        "rejections_path": str(tmp_path / "run" / "rejections.jsonl"),
    }


@pytest.fixture
def run_mapper(mapper_config: dict[str, Any]) -> Runner:
    """Run the mapper over messages; a list of streams' records is wrapped like a tap would:
    SCHEMA, the records, then a STATE, per stream."""

    def run(messages: Iterable[dict[str, Any]], **config: Any) -> Output:
        writer = CollectingWriter()
        mapper = ExactToMailchimpMapper(config=mapper_config | config, message_writer=writer)
        lines = "".join(json.dumps(m) + "\n" for m in messages)
        try:
            mapper.listen(io.StringIO(lines))
        finally:
            mapper.close()
        return Output(writer.messages)

    return run


class Pipeline:
    """Consecutive runs as Meltano makes them: the tap starts from (and first echoes) the last
    STATE the target confirmed, i.e. the last one the mapper forwarded in a successful run."""

    def __init__(self, run: Runner) -> None:
        self.run_mapper = run
        self.saved_state: dict[str, Any] | None = None

    def run(self, streams: dict[str, list[dict[str, Any]]] | list[dict[str, Any]],
            *, target_confirms: bool = True, full_refresh: bool = False, **config: Any) -> Output:
        echo = None if full_refresh else self.saved_state
        if isinstance(streams, dict):
            messages = tap_run(streams, bookmark=self._next_bookmark(), echo=echo)
        else:
            messages = ([state(echo)] if echo else []) + list(streams)
        out = self.run_mapper(messages, **config)
        forwarded = [m["value"] for m in out if m["type"] == "STATE"]
        if target_confirms and forwarded:
            self.saved_state = forwarded[-1]
        return out

    def _next_bookmark(self) -> int:
        self.bookmark = getattr(self, "bookmark", 0) + 1
        return self.bookmark


@pytest.fixture
def pipeline(run_mapper: Runner) -> Pipeline:
    return Pipeline(run_mapper)
