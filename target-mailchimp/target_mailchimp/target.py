"""target-mailchimp: keeps a Mailchimp audience (members, tags, e-commerce) in step."""

from __future__ import annotations

import gc
import hashlib
import logging
import sys
from collections.abc import Iterable
from functools import cached_property
from typing import IO, Any

from secret_store import restrict_new_files, store_key
from secret_store.run_files import SettledConfig
from secret_store.runlock import AlreadyRunning, RunLock, acquire
from secret_store.settings import coerce_numbers
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.json import serialize_json
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target

from target_mailchimp.auth import load_credentials
from target_mailchimp.heal import FAIL_ON, Healer, HealPolicy, HealReport, UnhealedWrites
from target_mailchimp.reconcile import DEFAULT_MAX_ARCHIVE_SHARE, Plan, Reconciler
from target_mailchimp.run_context import RunContext
from target_mailchimp.run_log import RunLog
from target_mailchimp.sinks import SINKS, IgnoredStreamSink, MailchimpSink
from target_mailchimp.tags import SegmentDirectory

GC_THRESHOLD = 50_000  # allocations between young-generation collections (CPython: 700)


class TargetMailchimp(SettledConfig, Target):
    """Keeps a Mailchimp audience and e-commerce store in step with any source.

    Input streams: members (email, source_key, source_updated_at, status_if_new, opt_out,
    merge_fields, language, vip), tags (tag_key, name, active), member_tags (email, tag_key,
    tag_name, active, source_updated_at), customers, products, orders, deletions (entity, key,
    deleted_at, action). Other streams: see `unknown_streams`. Details in the README.
    """

    name = "target-mailchimp"
    # msgspec reads a line in less than half json.loads' time, floats as exact Decimals alike.
    message_reader_class = MsgSpecReader

    config_jsonschema = th.PropertiesList(
        th.Property("api_key", th.StringType, secret=True,
                    description="Mailchimp API key `<key>-<dc>`; the data center comes from the "
                                "suffix. Or use oauth_token, or the secret store."),
        th.Property("oauth_token", th.StringType, secret=True,
                    description="Mailchimp OAuth token; its data center is asked from "
                                "`{login_url}/oauth2/metadata`."),
        th.Property("login_url", th.StringType, default="https://login.mailchimp.com",
                    description="Mailchimp login host (OAuth metadata); overridable for tests."),
        th.Property("base_url", th.StringType,
                    description="API base URL override, e.g. http://127.0.0.1:8702/3.0 for the "
                                "sandbox. Default: https://<dc>.api.mailchimp.com/3.0."),
        th.Property("secret_store_path", th.StringType,
                    description="The shared encrypted secret store (a directory or a database "
                                "URL); used when no api_key/oauth_token is set (document "
                                "`mailchimp`). Default: EXACTMC_DATABASE_URL, else "
                                "$MELTANO_PROJECT_ROOT/.secrets."),
        th.Property("secret_store_key", th.StringType, secret=True,
                    description="Fernet key of the secret store. Better left out: the target "
                                "reads it from the SECRET_STORE_KEY environment variable, so "
                                "it is never written to a config file."),
        th.Property("list_id", th.StringType, description="Audience (list) id."),
        th.Property("list_name", th.StringType,
                    description="Audience name, looked up when list_id is not set."),
        th.Property("store_id", th.StringType,
                    description="E-commerce store id (created if missing, tied to the list)."),
        th.Property("store_name", th.StringType, description="Name for a new store."),
        th.Property("store_currency", th.StringType, default="EUR",
                    description="Currency code for a new store."),
        th.Property("batch_size", th.IntegerType(minimum=1, maximum=500), default=500,
                    description="Members per batch-subscribe call and per segment update "
                                "(Mailchimp's limit: 500)."),
        th.Property("default_status_if_new", th.StringType(
                        allowed_values=["subscribed", "pending", "unsubscribed", "transactional"]),
                    default="transactional",
                    description="Status for new members whose record has no status_if_new. "
                                "Default transactional: no marketing without explicit consent."),
        th.Property("merge_field_map", th.ObjectType(additional_properties=True),
                    description="Record property -> merge tag, as \"TAG\" or "
                                "{\"tag\": \"TAG\", \"type\": \"text\", \"name\": \"Label\"}; "
                                "type and name are used when the field is created."),
        th.Property("create_missing_merge_fields", th.BooleanType, default=True,
                    description="Create merge fields the records use but the audience lacks. "
                                "When false such values are left out (noted in the audit)."),
        th.Property("skip_merge_validation", th.BooleanType, default=False,
                    description="Accept members without the audience's required merge fields."),
        th.Property("member_deletion", th.StringType(
                        allowed_values=["archive", "ignore", "delete_permanent"]),
                    default="archive", description="What a member deletion does."),
        th.Property("order_deletion", th.StringType(allowed_values=["cancel", "delete"]),
                    default="cancel", description="What an order deletion does."),
        th.Property("unknown_streams", th.StringType(allowed_values=["error", "ignore"]),
                    default="error",
                    description="A stream that is not a target stream: `error` stops at its "
                                "SCHEMA message (before anything is written); `ignore` drops "
                                "its records with a warning."),
        # Secret: a production URL carries the database password.
        # No default here: an empty setting must leave room for the fleet's database.
        th.Property("audit_store_url", th.StringType, secret=True,
                    description="SQLAlchemy URL (or file path) of the audit trail: SQLite or "
                                "PostgreSQL (postgresql+psycopg://..., a schema per tenant). "
                                "Empty: EXACTMC_DATABASE_URL if set (the fleet's one "
                                "database), else $MELTANO_SYS_DIR_ROOT/target-mailchimp/"
                                "audit.sqlite. Parent dirs of a SQLite file are created."),
        th.Property("max_in_flight", th.IntegerType(minimum=1, maximum=10), default=10,
                    description="Most simultaneous requests (Mailchimp allows 10 per key)."),
        th.Property("batch_operations_threshold", th.IntegerType(minimum=0), default=8,
                    description="Single-object writes (PUTs) at or above this count in one "
                                "drain go as one /batches job (its POST and a few status "
                                "polls), fewer go directly; bulk calls (batch subscribe, "
                                "segment updates) from 4 on, or this if lower. 0: never."),
        th.Property("batch_poll_interval", th.NumberType, default=30.0,
                    description="Longest wait in seconds between /batches status checks: the "
                                "first comes after 0.25 s, each wait 1.5x the last, up to this."),
        th.Property("retry_max_tries", th.IntegerType(minimum=1), default=8,
                    description="Tries per request on 429, 5xx, timeouts, dropped connections."),
        th.Property("retry_backoff_factor", th.NumberType, default=1.0,
                    description="Base seconds of the exponential backoff between tries."),
        th.Property("request_timeout", th.NumberType, default=120.0,
                    description="Seconds before a request is abandoned (and retried)."),
        th.Property("skip_unchanged_records", th.BooleanType, default=True,
                    description="Send nothing for a record identical to the last one written "
                                "for its key (a rerun after a kill, or the same job started "
                                "twice, then writes only what changed). A deletion forgets the "
                                "key; a batch with a failed write is not remembered."),
        th.Property("heal_max_attempts", th.IntegerType(minimum=0), default=5,
                    description="Times a run sends an earlier failed write again (retriable "
                                "refusals only) before giving it up to `replay` by hand. "
                                "0: no automatic healing."),
        th.Property("heal_backoff_minutes", th.IntegerType(minimum=0), default=10,
                    description="Wait before the first retry of a failed write; doubles after "
                                "each refused retry (next try not before last try + "
                                "backoff x 2^attempts)."),
        th.Property("fail_on_unhealed_writes", th.StringType(allowed_values=list(FAIL_ON)),
                    default="exhausted",
                    description="When a run leaving writes failed exits with status 3: "
                                "`exhausted` (the run in which a retriable write is given up), "
                                "`pending` (while any retriable write is unhealed), `any` (also "
                                "a permanent refusal recorded by this run), `never`. The last "
                                "log line always counts them."),
        th.Property("exact_run_summary_path", th.StringType,
                    description="For `status`: the tap-exactonline run summary (its "
                                "`run_summary_path`): Exact records read, daily budget per "
                                "division, refresh token age."),
        th.Property("mapper_store_url", th.StringType,
                    description="For `status`: the mapper's database (its `store_url`; table "
                                "`rejections`): records rejected, by reason, with keys. Empty: "
                                "resolved as the mapper's empty one (EXACTMC_DATABASE_URL, "
                                "else $MELTANO_SYS_DIR_ROOT/mapper-exact-mailchimp/"
                                "lookup.sqlite)."),
        th.Property("reconcile", th.BooleanType, default=False,
                    description="Month-end hygiene (the `reconcile` job): take the input as "
                                "the FULL desired state, read the audience and store in bulk "
                                "and repair only the drift (README: Reconcile)."),
        th.Property("dry_run", th.BooleanType, default=False,
                    description="With reconcile: log what would be repaired, write nothing."),
        th.Property("reconcile_max_archive_share", th.NumberType, default=0.2,
                    description="With reconcile: most members archived in one run, as a "
                                "share of the members this target wrote; above it none is "
                                "archived and the run exits 3 (the input was not a full read)."),
    ).to_dict()

    def _write_state_message(self, state: dict) -> None:
        # singer-sdk reads every float as a Decimal but (up to 0.54.9) writes STATE with plain
        # json.dumps: a tap with a fraction in its state crashed us (meltano/sdk#3787).
        sys.stdout.write(serialize_json(state) + "\n")
        sys.stdout.flush()

    def __init__(self, *args, **kwargs) -> None:
        restrict_new_files()  # the audit trail holds customer data
        super().__init__(*args, **kwargs)
        # Sequential drains: dependencies (products before orders...) are drained explicitly
        # and concurrency is bounded by the client's semaphore instead.
        self.max_parallelism = 1
        self._lean: dict[str, MailchimpSink] | None = None

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # Numbers from text (env, `kind: string`) and the store key from the environment,
        # in memory only, before the schema judges the config.
        config: dict[str, Any] = coerce_numbers(self._config, self.config_jsonschema)
        if key := store_key(config, "secret_store_key"):
            config["secret_store_key"] = key
        self._config = config
        return super()._validate_config(raise_errors=raise_errors)

    def _run_lock(self) -> RunLock:
        """One run at a time per audience and store: a second would write everything again."""
        credentials = load_credentials(self.config)
        account = hashlib.sha256(
            str(credentials.api_key or credentials.oauth_token).encode()).hexdigest()
        audience = self.config.get("list_id") or self.config.get("list_name")
        store = self.config.get("store_id")
        return acquire(
            "target-mailchimp",
            f"{self.config.get('base_url')}|{account}|{audience}|{store}",
            f"audience {audience!r} (store {store!r})",
        )

    @cached_property
    def run_context(self) -> RunContext:
        return RunContext(self.config)

    @cached_property
    def segments(self) -> SegmentDirectory:
        return SegmentDirectory(self.run_context)

    @cached_property
    def reconciler(self) -> Reconciler | None:
        """Set in reconcile mode: the sinks hand it every record instead of writing."""
        if not self.config.get("reconcile"):
            return None
        return Reconciler(self.run_context, self.segments,
                          dry_run=bool(self.config.get("dry_run")),
                          max_archive_share=float(self.config.get(
                              "reconcile_max_archive_share", DEFAULT_MAX_ARCHIVE_SHARE)))

    def _process_record_message(self, message_dict: dict) -> None:
        """A record of a stream one of our sinks takes as it comes (no stream map, no record
        metadata wanted) goes straight to its sink's batch: the SDK's per-record machinery
        (a copy, map lookups, metadata, hooks, per record) was a tenth of the target's CPU.
        Anything else takes the SDK's path. Validation is not skipped here: there was none
        (see `MailchimpSink.get_validator`)."""
        sink = self._lean_sinks.get(message_dict.get("stream"))  # type: ignore[arg-type]
        record = message_dict.get("record")
        if sink is None or not isinstance(record, dict):
            super()._process_record_message(message_dict)
            return
        sink.take(record)
        if sink.is_full:
            self.logger.info("Target sink for '%s' is full. Current size is '%s'. Draining...",
                             sink.stream_name, sink.current_size)
            self.drain_one(sink)
        self._handle_max_record_age()

    @property
    def _lean_sinks(self) -> dict[str, MailchimpSink]:
        """Active sinks of streams whose records need nothing of the SDK's record path (made
        again after each SCHEMA message: it may replace a sink or its stream maps)."""
        if self._lean is None:
            self._lean = {name: sink for name, sink in self._sinks_active.items()
                          if isinstance(sink, MailchimpSink) and self._plain(name, sink)}
        return self._lean

    def _process_schema_message(self, message_dict: dict) -> None:
        self._lean = None
        super()._process_schema_message(message_dict)

    def _plain(self, stream_name: str, sink: MailchimpSink) -> bool:
        maps = self.mapper.stream_maps.get(stream_name) or []
        return (len(maps) == 1 and type(maps[0]) is SameRecordTransform
                and maps[0].stream_alias == stream_name and not maps[0].flattening_enabled
                and not sink.include_sdc_metadata_properties)

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        if stream_name in SINKS:
            return SINKS[stream_name]
        if self.config.get("unknown_streams", "error") == "ignore":
            return IgnoredStreamSink
        raise ValueError(
            f"target-mailchimp does not know the stream '{stream_name}'. Target streams: "
            f"{', '.join(SINKS)}. Rename it with stream_maps, or set unknown_streams: ignore."
        )

    def drain_streams(self, stream_names: Iterable[str]) -> None:
        """Drain the named streams' sinks now (used for products/customers before orders)."""
        for name in stream_names:
            sink = self._sinks_active.get(name)
            if isinstance(sink, MailchimpSink):
                self.drain_one(sink)

    def listen(self, file_input: IO[str] | None = None) -> None:
        """Process the input, heal earlier failed writes, then end the run even when it
        failed midway; the last log line says what is left failed.

        A failed run still tries to set `is_syncing` back to false (best effort, so the
        original error is what surfaces); if that fails too, the next run does it.
        """
        # A run makes millions of short-lived containers (records, bodies, audit rows) and
        # hardly any cycles; the collector's default pass every 700 new ones walked the young
        # heap a hundred thousand times: an eighth of the target's CPU. Cycles are still
        # collected, every 50,000 allocations.
        gc.set_threshold(GC_THRESHOLD, 20, 100)
        try:
            lock = self._run_lock()  # the OS frees it if the process dies, a kill included
        except AlreadyRunning as exc:
            raise SystemExit(f"error: {exc}") from None  # a clear line, exit 1, no traceback
        completed = False
        run_log = RunLog(self.config)  # the runs `status` lists
        try:
            super().listen(file_input)
            if self.reconciler is not None:  # reconcile mode: the drift instead of healing
                plan = self.reconciler.run(self._latest_state)
                completed = True
            else:
                # Healing comes at the END, once every sink has drained: this run's own writes
                # are then in the audit trail, so an older failed write of an object this run
                # wrote again (or deleted) is seen as superseded and never sent over the newer
                # data; products and customers written now are there for the orders that waited
                # for them; and this run's STATE is already out, so healing never holds it back.
                # At the start, the run could not know what newer data its input still brings.
                report = Healer(self.run_context, self.heal_policy).run()
                completed = True
        except BaseException as exc:
            run_log.failed(exc, self.__dict__.get("run_context"))
            raise
        finally:
            run_log.ended(completed, self.__dict__.get("run_context"))
            try:
                self._end_run(completed)
            finally:
                lock.release()
        if self.reconciler is not None:
            self._report_reconcile(plan)
        else:
            self._report(report)

    def _report_reconcile(self, plan: Plan) -> None:
        """The reconcile run's last log line: repairs, what was kept, the cost in calls."""
        assert self.reconciler is not None
        self.logger.info("%s", self.reconciler.summary(plan))
        if plan.refusal:
            self.logger.error("Reconcile refused: %s. Exit status 3.", plan.refusal)
            raise UnhealedWrites(3)

    @cached_property
    def heal_policy(self) -> HealPolicy:
        return HealPolicy.from_config(self.config)

    def _report(self, report: HealReport) -> None:
        """The run's last log line; exit status 3 when the policy says a person must look."""
        status = report.exit_status(self.heal_policy)
        unhealed = report.pending or report.gave_up or report.permanent or report.bad_input
        level = logging.ERROR if status else logging.WARNING if unhealed else logging.INFO
        self.logger.log(level, "%s", report.line(self.heal_policy))
        if status:
            raise UnhealedWrites(status)

    def _end_run(self, completed: bool) -> None:
        # After a clean run the context is built even if no record came (a leftover syncing
        # flag must still be reset); after a failure only if the run got that far.
        if not completed and "run_context" not in self.__dict__:
            return
        try:
            self.run_context.finish()
        except Exception as exc:  # must not hide the error that stopped the run
            if completed:
                raise
            self.logger.warning("Could not set the store's is_syncing back to false (%s); "
                                "the next run will.", exc)
        finally:
            self.run_context.close()


if __name__ == "__main__":
    TargetMailchimp.cli()
