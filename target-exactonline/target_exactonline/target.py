"""target-exactonline: Mailchimp opt-outs and cost-center tags written back to Exact Online."""

from __future__ import annotations

from functools import cached_property
from typing import IO, Any

from secret_store import restrict_new_files
from secret_store.runlock import AlreadyRunning, RunLock, acquire
from singer_sdk import typing as th
from singer_sdk.sinks import Sink
from singer_sdk.target_base import Target
from tap_exactonline.credentials import prepare_config, token_store_name
from tap_exactonline.rate_limit import DailyLimitReached
from tap_exactonline.tap import CONFIG_SCHEMA as TAP_SCHEMA
from tap_exactonline.tap import resolve_base_url

from target_exactonline.cost_centers import DEFAULT_TEMPLATE
from target_exactonline.run import Run
from target_exactonline.sinks import SINKS, IgnoredStreamSink

# The tap's connection settings, unchanged: the same app, company, token store and pacing.
SHARED = ("client_id", "client_secret", "refresh_token", "region", "base_url", "divisions",
          "all_divisions", "token_store_path", "token_store_key", "token_store_name",
          "user_agent", "date_interpretation", "request_timeout", "token_timeout", "max_retries",
          "retry_initial_wait", "max_rate_limit_wait", "lost_refresh_max_wait")

OWN = th.PropertiesList(
    th.Property("write_exclusions", th.BooleanType, default=False,
                description="Set `IsMailingExcluded = true` on every Exact contact (in the "
                "divisions) whose Email or BusinessEmail is an address unsubscribed or cleaned "
                "in Mailchimp. Off: each such contact is only reported in the audit trail."),
    th.Property("create_cost_centers", th.BooleanType, default=False,
                description="Create a cost center for a Mailchimp tag named by the cost-center "
                "template whose code has none in its division. Off: only reported."),
    th.Property("tag_name_template", th.StringType, default=DEFAULT_TEMPLATE,
                description="The cost-center tag name, as the mapper's setting of the same name "
                "(placeholders {code}, {description}, {division})."),
    th.Property("restore_tag_names", th.BooleanType, default=True,
                description="A cost-center tag renamed in Mailchimp when Exact's cost center "
                "changed later: rename the tag back to Exact's name (one PATCH, only when the "
                "names differ). Off: only reported. Mailchimp's key or token comes from the "
                "store's `mailchimp` document (token_store_path)."),
    th.Property("mailchimp_base_url", th.StringType,
                description="Mailchimp API base URL override for that rename (e.g. the sandbox, "
                "http://127.0.0.1:8702/3.0). Default: the key's or token's data center."),
    th.Property("mailchimp_login_url", th.StringType,
                description="Mailchimp login host (OAuth metadata); overridable for tests."),
    # No default here: an empty setting must leave room for the fleet's database.
    th.Property("audit_store_url", th.StringType, secret=True,
                description="SQLAlchemy URL (or file path) of the audit trail (every decision "
                "and write): SQLite or PostgreSQL (a schema per tenant). Empty: "
                "EXACTMC_DATABASE_URL if set (the fleet's one database), else "
                "$MELTANO_SYS_DIR_ROOT/target-exactonline/audit.sqlite. Parent dirs of a "
                "SQLite file are created; the file is created 0600."),
).to_dict()


def _schema() -> dict[str, Any]:
    properties = {name: TAP_SCHEMA["properties"][name] for name in SHARED}
    properties.update(OWN["properties"])
    required = [name for name in TAP_SCHEMA.get("required", []) if name in SHARED]
    return {"type": "object", "properties": properties, "required": required}


class TargetExactOnline(Target):
    """Writes back to Exact: `mailing_exclusions` (opt-outs), `tags` (cost centers),
    `email_changes` (reported only). Input from tap-mailchimp; see the README."""

    name = "target-exactonline"
    config_jsonschema = _schema()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        restrict_new_files()  # the audit trail holds customer addresses
        super().__init__(*args, **kwargs)
        self.max_parallelism = 1

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The tap's rules: secrets from the store, its key from SECRET_STORE_KEY, numbers from
        # text, all in memory only, before the schema judges the config.
        self._config = prepare_config(self._config, self.config_jsonschema)
        return super()._validate_config(raise_errors=raise_errors)

    @cached_property
    def run(self) -> Run:
        return Run(self.config)

    def get_sink_class(self, stream_name: str) -> type[Sink]:
        return SINKS.get(stream_name, IgnoredStreamSink)

    def _run_lock(self) -> RunLock:
        """One run at a time per Exact company: two would look up and write the same rows."""
        name = token_store_name(self.config)
        return acquire("target-exactonline", f"{resolve_base_url(dict(self.config))}|{name}",
                       name)

    def listen(self, file_input: IO[str] | None = None) -> None:
        try:
            lock = self._run_lock()  # the OS frees it if the process dies, a kill included
        except AlreadyRunning as exc:
            raise SystemExit(f"error: {exc}") from None
        try:
            try:
                super().listen(file_input)
            except DailyLimitReached as exc:
                # No STATE for the unfinished batch: the next run gets the same records again,
                # and what this run wrote is then found equal (no second write).
                raise SystemExit(f"error: {exc} Stopped; the next run goes on.") from None
            run = self.__dict__.get("run")
            counts = run.audit.counts if run and "audit" in run.__dict__ else {}
            client = run.__dict__.get("client") if run else None
            self.logger.info("Exact write-back: %s; %d API calls.",
                             ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or
                             "nothing to do", client.calls if client else 0)
        finally:
            try:
                if "run" in self.__dict__:
                    self.run.close()
            finally:
                lock.release()


if __name__ == "__main__":
    TargetExactOnline.cli()
