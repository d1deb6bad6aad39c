"""Fixtures running the mapper in-process over Singer messages."""

from __future__ import annotations

import io
import itertools
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the builders module beside the tests

from mapper_exact_mailchimp.mapper import ExactToMailchimpMapper
from mapper_test_kit import CollectingWriter, Output, Runner, state, tap_run

_stores = itertools.count(1)


@pytest.fixture(scope="session")
def mapper_postgres_url(postgres_server: Any) -> str:
    """One database for the session: each test's store is a namespace (schema) of its own."""
    return postgres_server.create_database()


# Modules whose tests run on both backends (crash recovery, confirmation, deletions, the lock,
# the stores themselves); the others' mapping logic does not depend on the backend, and CI
# time is scarce: they run on SQLite only.
BOTH_BACKENDS = {"test_runs", "test_batched_work", "test_deletions", "test_store_backends",
                 "test_ledger_hash"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mapper_backend" in metafunc.fixturenames and \
            metafunc.module.__name__.rpartition(".")[2] in BOTH_BACKENDS:
        metafunc.parametrize("mapper_backend", ["sqlite", "postgresql"])


@pytest.fixture
def mapper_backend() -> str:
    return "sqlite"


@pytest.fixture
def mapper_config(mapper_backend: str, request: pytest.FixtureRequest,
                  tmp_path: Path) -> dict[str, Any]:
    """The store of one test: a SQLite file (the older path setting) or a namespace of its own
    in a database of a real PostgreSQL server."""
    if mapper_backend == "sqlite":
        return {"lookup_store_path": str(tmp_path / "run" / "lookup.sqlite")}
    return {"store_url": request.getfixturevalue("mapper_postgres_url"),
            "store_namespace": f"m{next(_stores)}"}


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
