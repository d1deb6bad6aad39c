"""The Singer mapper: Exact Online tap streams in, Mailchimp target streams out.

Records are stored, not mapped one by one: outputs need joins across streams and runs. At each
STATE (and at end of input) everything dirty is recomputed from the lookup store, the changed
outputs are written, and only then the held STATE is passed on unchanged, so the target never
confirms a state whose records it has not seen.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import typing as t
from collections import Counter
from collections.abc import Iterable, Iterator

from secret_store.database import engine_for
from secret_store.run_files import SettledConfig
from singer_sdk import InlineMapper
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.singerlib import Message, SchemaMessage, StateMessage

from .flush import Flusher, after_emit
from .ingest import Ingestor
from .ledger import OutputLedger
from .lookup_store import LookupStore
from .reader import RawRecordReader
from .rejections import Rejection, RejectionLog
from .schemas import OUTPUT_STREAMS
from .settings import CONFIG_SCHEMA, MappingSettings
from .store import Database, StoreBusyError, StoreLock, resolve_url
from .writer import StateFlushingWriter

logger = logging.getLogger("mapper-exact-mailchimp")
STORE_LOCK_TIMEOUT_SECONDS = 60
GC_THRESHOLD = 50_000  # allocations between young-generation collections (CPython: 700)


LookupStoreBusyError = StoreBusyError  # the name tests and callers know


class ExactToMailchimpMapper(SettledConfig, InlineMapper):
    """Maps Exact Online accounts, contacts, invoices, cost centers and receivables to
    Mailchimp members, tags, member tags, customers, products, orders and deletions.
    SCHEMA input is consumed; ACTIVATE_VERSION is ignored; BATCH is not supported."""

    name = "mapper-exact-mailchimp"
    config_jsonschema = CONFIG_SCHEMA
    # Joins replace the SDK's per-record stream maps, so those are not offered.
    capabilities: t.ClassVar[list] = [PluginCapabilities.ABOUT]
    message_writer_class = StateFlushingWriter
    message_reader_class = RawRecordReader

    def __init__(self, **kwargs: t.Any) -> None:
        os.umask(0o077)  # files created from here on (the SQLite store) are private
        super().__init__(**kwargs)
        self.settings = MappingSettings.from_config(dict(self.config))
        namespace = self.settings.store_namespace
        engine = engine_for(resolve_url(
            self.settings.store_url or self.settings.lookup_store_path, namespace), namespace)
        self.where = engine.url.render_as_string(hide_password=True)
        # Taken before the tables are made: two runs never create them at once.
        self._lock = StoreLock(engine, STORE_LOCK_TIMEOUT_SECONDS)
        try:
            self.db = Database(engine)
            self.store = LookupStore(self.db)
            self.ledger = OutputLedger(self.db)
            self.rejection_log = RejectionLog(self.db, self.ledger)
        except BaseException:
            self._lock.release()
            raise
        self.flusher = Flusher(self.store, self.ledger, self.rejection_log, self.settings)
        self.ingestor = Ingestor(self.store)
        self._held_states: list[t.Any] = []
        self._unkeyed: list[Rejection] = []
        self._schemas_sent: set[str] = set()
        self._confirmed = False
        self._current_stream: str | None = None
        self._finished_streams: set[str] = set()
        self.emitted: Counter[str] = Counter()

    def listen(self, file_input: t.IO[str] | None = None) -> None:
        # A run makes millions of short-lived containers (records, rows, outputs) and hardly
        # any cycles: the collector's default young pass every 700 new ones was ~5 % of the
        # mapper's CPU (issue 9). Cycles are still collected, every 50,000 allocations.
        gc.set_threshold(GC_THRESHOLD, 20, 100)
        super().listen(file_input)

    # --- Singer message handlers -----------------------------------------------------------

    def map_schema_message(self, message_dict: dict) -> Iterable[Message]:
        self._note_stream(message_dict["stream"])
        return []  # input schemas are consumed; the output streams have their own

    def map_record_message(self, message_dict: dict) -> Iterable[Message]:
        self._confirm_once(None)
        self._note_stream(message_dict["stream"])
        rejection = self.ingestor.ingest(message_dict["stream"], message_dict["record"])
        if rejection:
            self._unkeyed.append(rejection)
        return []

    def _process_record_message(self, message_dict: dict) -> None:
        # A record writes nothing (it is stored; outputs come at a STATE): no write loop over
        # no messages for each of them (issue 9: the per-record path).
        if messages := self.map_record_message(message_dict):
            self._write_messages(messages)

    def map_state_message(self, message_dict: dict) -> Iterable[Message]:
        state = message_dict["value"]
        # A singer-sdk tap opens with its saved state: what the target last confirmed.
        self._confirm_once(state)
        self._held_states.append(state)
        return self._flush(final=False)

    def map_activate_version_message(self, message_dict: dict) -> Iterable[Message]:
        return []  # outputs are upserts keyed by Mailchimp ids: versions have no meaning here

    def map_batch_message(self, message_dict: dict) -> Iterable[Message]:
        msg = ("BATCH messages are not supported: records inside batch files cannot be joined. "
               "Run the tap without batch mode.")
        raise NotImplementedError(msg)

    def _note_stream(self, stream: str) -> None:
        # Taps send one stream after another (singer-sdk: all partitions of a stream, then
        # the next): once another stream starts, the previous one is complete for this run.
        if self._current_stream not in (None, stream):
            self._finished_streams.add(self._current_stream)
        self._current_stream = stream

    def _confirm_once(self, echoed_state: t.Any | None) -> None:
        if self._confirmed:
            return
        self._confirmed = True
        if not self.ledger.confirm(echoed_state) and echoed_state is not None:
            logger.info("The tap's opening state was never forwarded with this lookup store: "
                        "outputs not yet confirmed by an earlier run will be re-sent.")
        self.flusher.requeue_unconfirmed()

    def process_endofpipe(self) -> None:
        self._confirm_once(None)
        self._write_messages(self._flush(final=True))
        sys.stdout.flush()  # records after the last STATE (StateFlushingWriter holds them)
        self.ledger.complete_run()
        self._commit()
        logger.info(
            "Run complete: %s; %d rejected record(s) newly reported (table rejections of %s).",
            ", ".join(f"{n} {s}" for s, n in sorted(self.emitted.items())) or "no changes",
            self.rejection_log.reported_this_run, self.where,
        )
        self.close()

    def close(self) -> None:
        """Release the store; anything not committed by a flush is rolled back."""
        if self._lock.is_locked:
            self.db.rollback()
            self.db.close()
            self.db.engine.dispose()  # no pooled connection outlives the run
            self._lock.release()

    # --- flushing --------------------------------------------------------------------------

    def _flush(self, *, final: bool) -> Iterator[Message]:
        # A generator: each message is written before the ledger records it.
        self.ingestor.drain()  # the queued records are in the store before it is read
        unkeyed, self._unkeyed = self._unkeyed, []
        result = self.flusher.flush(
            final=final, finished=frozenset(self._finished_streams), extra_rejections=unkeyed)
        if result.rejected:
            logger.warning("%d record(s) rejected; see table rejections of %s",
                           result.rejected, self.where)
        for output in result.outputs:
            if output.stream not in self._schemas_sent:
                keys, schema = OUTPUT_STREAMS[output.stream]
                self._schemas_sent.add(output.stream)
                yield SchemaMessage(stream=output.stream, schema=schema, key_properties=keys)
            yield output.message()  # type: ignore[misc]
            after_emit(self.ledger, output)
            self.emitted[output.stream] += 1
        # Input rows are committed before a STATE leaves: once the target confirms it, the
        # tap never resends them. A STATE is logged as forwarded only once it is written.
        self._commit()
        if result.deferred and not final:
            return  # a STATE covering records still waiting for input waits with them
        states, self._held_states = self._held_states, []
        for state in states:
            yield StateMessage(value=state)
            self.ledger.log_forwarded_state(state)
            self._commit()

    def _commit(self) -> None:
        # Rows, marks and ledger writes are batched in memory (issue 9): written, then
        # committed.
        self.ingestor.drain()
        self.store.save()
        self.ledger.save()
        self.db.commit()


if __name__ == "__main__":
    ExactToMailchimpMapper.cli()
