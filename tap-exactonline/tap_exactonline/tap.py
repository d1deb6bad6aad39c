"""tap-exactonline: the Tap class, its settings and the objects all streams share."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import IO, Any

from secret_store import SecretStoreError, restrict_new_files
from secret_store.run_files import SettledConfig, settled
from secret_store.runlock import AlreadyRunning, RunLock, acquire
from singer_sdk import Tap
from singer_sdk import typing as th

from tap_exactonline.auth import ExactAuthenticator
from tap_exactonline.credentials import prepare_config, token_store_name
from tap_exactonline.dates import DATE_INTERPRETATIONS
from tap_exactonline.divisions import CHECK_STATE_KEY, DivisionPlan, plan_divisions
from tap_exactonline.invoice_feed import LineSpool
from tap_exactonline.output import ExactMessageWriter
from tap_exactonline.rate_limit import RateLimiter
from tap_exactonline.run_summary import recorded_run
from tap_exactonline.streams import STREAM_TYPES
from tap_exactonline.sync_scope import ALL, PENDING_WEBHOOKS, SCOPES, SyncScope, entry_partitions
from tap_exactonline.token_store import TokenStore
from tap_exactonline.webhook_server import SERVE_SETTINGS as WEBHOOK_SERVE_SETTINGS
from tap_exactonline.webhooks import TOPIC_STREAMS, WebhookInbox, inbox_setting

LOGGER = logging.getLogger("tap_exactonline")

REGION_HOSTS = {
    "nl": "https://start.exactonline.nl",
    "be": "https://start.exactonline.be",
    "de": "https://start.exactonline.de",
    "fr": "https://start.exactonline.fr",
    "es": "https://start.exactonline.es",
    "uk": "https://start.exactonline.co.uk",
    "us": "https://start.exactonline.com",
}


def resolve_base_url(config: dict) -> str:
    """`base_url` when given (the sandbox), else the host of `region`."""
    if config.get("base_url"):
        return str(config["base_url"]).rstrip("/")
    return REGION_HOSTS[config.get("region") or "nl"]


CONFIG_SCHEMA = th.PropertiesList(
    th.Property("client_id", th.StringType, required=True,
                description="OAuth client id of the Exact Online app."),
    th.Property("client_secret", th.StringType, required=True, secret=True,
                description="OAuth client secret of the Exact Online app. Under Meltano keep "
                "it in the store (`tap-exactonline-set-credential client_secret`); a config "
                "value wins over the store."),
    th.Property("refresh_token", th.StringType, secret=True,
                description="Bootstrap refresh token. Used only when the token store has none, "
                "or when the stored one is dead and this one differs from the one that seeded "
                "the store. `tap-exactonline-authorize` makes it unnecessary."),
    th.Property("region", th.StringType, default="nl", allowed_values=list(REGION_HOSTS),
                description="Exact Online region (host): nl, be, de, fr, es, uk or us."),
    th.Property("base_url", th.StringType,
                description="Overrides the regional host, e.g. the sandbox "
                "`http://127.0.0.1:8701/nl`. Paths `/api/...` are appended."),
    th.Property("divisions", th.ArrayType(th.IntegerType),
                description="Divisions to read. Empty: the user's current division (current/Me)."),
    th.Property("all_divisions", th.BooleanType, default=False,
                description="Read every division of the company (system/Divisions); "
                "overrides `divisions`."),
    th.Property("start_date", th.DateTimeType,
                description="Earliest `Modified` for the Modified-based streams "
                "(cost_centers, receivables) on their first run."),
    th.Property("token_store_path", th.StringType,
                description="The encrypted token store: a directory, or a database URL "
                "(sqlite:///..., postgresql://...; for PostgreSQL leave the password out and set "
                "PGPASSWORD). Default: EXACTMC_DATABASE_URL (a fleet's one database), else "
                "$MELTANO_PROJECT_ROOT/.secrets."),
    th.Property("token_store_key", th.StringType, secret=True,
                description="Fernet key of the token store (`secret-store generate-key`). "
                "Better left out: the tap reads it from the SECRET_STORE_KEY environment "
                "variable, so it is never written to a config file."),
    th.Property("token_store_name", th.StringType,
                description="Store entry of this company's tokens and credentials (default "
                "`exactonline-<client_id>`). Give each company that has its own Exact "
                "authorization its own name."),
    th.Property("redirect_uri", th.StringType,
                description="Redirect URI registered for the app, for `tap-exactonline-authorize` "
                "(default http://localhost:8765/callback)."),
    th.Property("user_agent", th.StringType, description="User-Agent header for API calls."),
    th.Property("date_interpretation", th.StringType, default="amsterdam_wall_clock",
                allowed_values=list(DATE_INTERPRETATIONS),
                description="How to read `/Date(ms)/`: `amsterdam_wall_clock` (ms are the "
                "Amsterdam wall clock written as UTC; Airbyte's reading, unconfirmed) or `utc`."),
    th.Property("modified_overlap_seconds", th.NumberType, default=300,
                description="How far before the Modified bookmark to re-read (keys are stable, "
                "re-sends are harmless)."),
    th.Property("division_check_interval", th.NumberType, default=0,
                description="Seconds a division check (system/Divisions, and current/Me when "
                "no division is configured) is trusted before Exact is asked again; kept in the "
                "state. 0 (the default) checks every run. A division move is then found up to "
                "this long after it happened (that division is read in full at the next check)."),
    th.Property("request_timeout", th.NumberType, default=300,
                description="Seconds to wait for an API answer."),
    th.Property("token_timeout", th.NumberType, default=60,
                description="Seconds to wait for the token endpoint."),
    th.Property("max_retries", th.IntegerType, default=5,
                description="Retries of a 5xx, timeout or dropped connection (never of a 4xx)."),
    th.Property("retry_initial_wait", th.NumberType, default=1.0,
                description="First backoff wait in seconds; doubles on each retry."),
    th.Property("max_rate_limit_wait", th.NumberType, default=90,
                description="Longest sleep for a minutely rate-limit reset."),
    th.Property("webhook_secret", th.StringType, secret=True,
                description="Exact webhook secret, for `tap-exactonline-webhooks serve`."),
    th.Property("webhook_inbox_url", th.StringType, secret=True,  # a URL may hold a password
                description="Database of the webhook inbox, where the webhook service notes "
                "the keys Exact announced (a SQLAlchemy URL or a SQLite file; a completed run "
                "clears the entries it covered). Default: EXACTMC_DATABASE_URL, else "
                "$MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite (the webhook service's default)."),
    th.Property("webhook_inbox_path", th.StringType,
                description="Deprecated: the inbox as a SQLite file (webhook_inbox_url wins)."),
    th.Property("mark_incomplete_read", th.BooleanType, default=False,
                description="A run that stops early on Exact's daily budget ends with a STATE "
                "carrying `\"incomplete_read\": true` (set by the `reconcile` job, whose "
                "target then archives nobody)."),
    th.Property("sync_scope", th.StringType, default=ALL, allowed_values=list(SCOPES),
                description="What a run reads: `all` (every stream and division; the schedule) "
                "or `pending_webhooks` (only the stream/division partitions with entries in "
                "the webhook inbox; nothing when it is empty; other bookmarks are kept as they "
                "came in). The webhook service's runs use `pending_webhooks`."),
    th.Property("webhook_callback_url", th.StringType,
                description="Public URL Exact delivers webhooks to; the default callback of "
                "`tap-exactonline-webhooks subscribe` (meltano: `webhooks-subscribe`)."),
    th.Property("webhook_base_url", th.StringType,
                description="Public root of the webhook service (e.g. https://hooks.example."
                "com): when webhook_callback_url is empty, `webhooks-subscribe` subscribes "
                "`<base>/exact`, or `<base>/exact/<tenant>` for a fleet tenant (EXACTMC_TENANT, "
                "set by `exactmc-tenants`): one setting for the whole fleet."),
    *WEBHOOK_SERVE_SETTINGS,  # `tap-exactonline-webhooks serve` limits
    th.Property("run_summary_path", th.StringType,
                description="JSON file where each run leaves what it read per stream, Exact's "
                "daily call budget left per division and the refresh token's issue time (no "
                "customer data); target-mailchimp's `status` reads it (its "
                "`exact_run_summary_path`). Empty: not written."),
    th.Property("lost_refresh_max_wait", th.NumberType, default=660,
                description="Longest wait, after a token refresh that got no answer, until Exact "
                "allows retrying with the previous refresh token; beyond it the run stops."),
).to_dict()


INCOMPLETE_READ_KEY = "incomplete_read"  # top level of the last STATE (mark_incomplete_read)


class TapExactOnline(SettledConfig, Tap):
    """Exact Online → Singer: CRM, sales invoices, cost centers, receivables, deletions."""

    name = "tap-exactonline"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = ExactMessageWriter  # msgspec: a quarter of the CPU was encoding

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        restrict_new_files()  # the webhook inbox, spools and stores hold customer data
        super().__init__(*args, **kwargs)

    @classmethod
    def invoke(cls, *, state: IO[str] | None = None, catalog: IO[str] | None = None,
               **kwargs: Any) -> None:
        # Meltano's run files may be rewritten by another run starting right now (run_files).
        super().invoke(state=settled(state), catalog=settled(catalog), **kwargs)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # Secrets from the store and numbers from text, before the schema judges the config.
        self._config = prepare_config(self._config, self.config_jsonschema)
        return super()._validate_config(raise_errors=raise_errors)

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)  # the bookmarks
        if isinstance(state.get(CHECK_STATE_KEY), dict):  # and the last division check
            self.state[CHECK_STATE_KEY] = state[CHECK_STATE_KEY]

    def discover_streams(self) -> list:
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    # -- shared by every stream ---------------------------------------------------------------
    @cached_property
    def base_url(self) -> str:
        return resolve_base_url(dict(self.config))

    @cached_property
    def token_store(self) -> TokenStore:
        if not self.config.get("token_store_key"):
            raise SecretStoreError("No key for the token store: set the SECRET_STORE_KEY "
                                   "environment variable (or token_store_key in the config).")
        return TokenStore(
            self.config["token_store_path"], self.config["token_store_key"],
            self.config["client_id"], name=token_store_name(self.config),
        )

    @cached_property
    def authenticator(self) -> ExactAuthenticator:
        return ExactAuthenticator(
            base_url=self.base_url,
            client_id=self.config["client_id"],
            client_secret=self.config["client_secret"],
            store=self.token_store,
            bootstrap_refresh_token=self.config.get("refresh_token"),
            timeout=float(self.config.get("token_timeout", 60)),
            lost_refresh_max_wait=float(self.config.get("lost_refresh_max_wait", 660)),
        )

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        return RateLimiter(max_wait=float(self.config.get("max_rate_limit_wait", 90)))

    @cached_property
    def line_spool(self) -> LineSpool:
        return LineSpool()

    @cached_property
    def division_plan(self) -> DivisionPlan:
        return plan_divisions(self)

    @property
    def divisions(self) -> list[int]:
        return self.division_plan.divisions

    @property
    def division_move_dates(self) -> dict[int, str | None]:
        return self.division_plan.move_dates

    @cached_property
    def sync_scope(self) -> SyncScope:
        """The partitions this run reads (`sync_scope`), fixed once, at the start of the run."""
        if (self.config.get("sync_scope") or ALL) != PENDING_WEBHOOKS:
            return SyncScope()
        return SyncScope.from_entries(self.webhook_inbox.pending())

    @cached_property
    def webhook_inbox(self) -> WebhookInbox:
        return WebhookInbox(inbox_setting(self.config))

    def _run_lock(self) -> RunLock:
        """One sync at a time per company and division selection (a second would duplicate)."""
        selection = "all" if self.config.get("all_divisions") else sorted(
            self.config.get("divisions") or [])
        name = token_store_name(self.config)
        return acquire("tap-exactonline", f"{self.base_url}|{name}|{selection}",
                       f"{name} (divisions: {selection or 'current'})")

    def sync_all(self) -> None:
        try:
            lock = self._run_lock()  # the OS frees it if the process dies, a kill included
        except AlreadyRunning as exc:
            raise SystemExit(f"error: {exc}") from None  # a clear line, exit 1, no traceback
        try:
            with recorded_run(self):  # run_summary_path: read by target-mailchimp's status
                self._sync_all()
        finally:
            lock.release()

    def _sync_all(self) -> None:
        started = self.webhook_inbox.now()  # the clock the inbox's entries are stamped in
        scope = self.sync_scope  # read after `started`: every entry it covers is older
        if scope.empty:  # a webhook-triggered run with nothing pending: no call at all
            LOGGER.info("sync_scope pending_webhooks: the webhook inbox is empty, nothing to read.")
            return
        if not scope.everything:
            LOGGER.info("sync_scope pending_webhooks: reading %s.", scope.describe())
        try:
            super().sync_all()
        finally:
            self.line_spool.close()
        if not self.rate_limiter.stopped_early:
            # Every selected feed was polled to its end: what webhooks announced before is covered.
            self.webhook_inbox.clear_before(started, self._polled)
        if self.rate_limiter.exhausted:
            LOGGER.warning(
                "Stopped early: Exact's daily call limit is spent for division(s) %s. State "
                "holds the bookmarks reached; the next run resumes from there.",
                sorted(d for d in self.rate_limiter.exhausted if d is not None),
            )
        if self.rate_limiter.shares.cut_short:
            LOGGER.warning(
                "Stopped early to share Exact's daily call limit fairly: %s go on from their "
                "bookmarks in the next run.",
                ", ".join(f"{key} (division {d})" for key, d in sorted(
                    self.rate_limiter.shares.cut_short, key=str)),
            )
        if self.config.get("mark_incomplete_read") and self.rate_limiter.stopped_early:
            # The reconcile job's target takes the input as ALL of Exact's data (what it lacks
            # is archived): it must see this read was not. A top-level key, so the SDK drops it
            # when the state is loaded again.
            self._state_writer.write_state({**self.state, INCOMPLETE_READ_KEY: True})

    def _polled(self, entry: dict[str, Any]) -> bool:
        """Whether this run read what a webhook entry announced: its division and its topic."""
        stream = self.streams.get(TOPIC_STREAMS.get(entry.get("Topic") or "", ""))
        read = {str(division) for division in self.divisions}  # Exact may send "101" or 101
        in_scope = all(self.sync_scope.covers(*p) for p in entry_partitions(entry))
        return (str(entry.get("Division")) in read and (stream is None or stream.selected)
                and in_scope)


if __name__ == "__main__":
    TapExactOnline.cli()
