"""tap-mailchimp: what flows back from a Mailchimp audience to the source system."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from secret_store import store_key
from secret_store.settings import coerce_numbers
from singer_sdk import Tap
from singer_sdk import typing as th

from tap_mailchimp.auth import connection
from tap_mailchimp.client import MailchimpReader
from tap_mailchimp.own_opt_outs import ForwardTrail
from tap_mailchimp.streams import STREAM_TYPES, ListStream


class TapMailchimp(Tap):
    """Streams: mailing_exclusions (unsubscribed and cleaned members, polled and from the
    webhook inbox), tags (static segments), email_changes (upemail webhooks). Per-list
    bookmarks. Credentials: the encrypted store's `mailchimp` document, as target-mailchimp.
    """

    name = "tap-mailchimp"

    config_jsonschema = th.PropertiesList(
        th.Property("list_id", th.StringType, required=True,
                    description="Audience (list) id; several separated by commas, each with "
                                "its own bookmarks."),
        th.Property("base_url", th.StringType,
                    description="API base URL override, e.g. http://127.0.0.1:8702/3.0 for the "
                                "sandbox. Default: https://<dc>.api.mailchimp.com/3.0."),
        th.Property("login_url", th.StringType, default="https://login.mailchimp.com",
                    description="Mailchimp login host (OAuth metadata); overridable for tests."),
        th.Property("secret_store_path", th.StringType,
                    description="The shared encrypted secret store (a directory or a database "
                                "URL) holding the Mailchimp API key or OAuth token (document "
                                "`mailchimp`, stored with `target-mailchimp:set-credential`). "
                                "Default: EXACTMC_DATABASE_URL, else "
                                "$MELTANO_PROJECT_ROOT/.secrets."),
        th.Property("secret_store_key", th.StringType, secret=True,
                    description="Fernet key of the store. Better left out: it is read from the "
                                "SECRET_STORE_KEY environment variable, never a config file."),
        th.Property("api_key", th.StringType, secret=True,
                    description="Plain-Singer use only: the API key `<key>-<dc>` instead of "
                                "the store (then the config file is yours to protect)."),
        th.Property("oauth_token", th.StringType, secret=True,
                    description="Plain-Singer use only: an OAuth token instead of the store."),
        th.Property("mailchimp_inbox_url", th.StringType, secret=True,  # may hold a password
                    description="Database of the Mailchimp webhook inbox written by the "
                                "webhook service (exactmc-webhooks; its inbox_url): a "
                                "SQLAlchemy URL or a SQLite file. Default: EXACTMC_DATABASE_URL "
                                "(the tenant's schema), else $MELTANO_SYS_DIR_ROOT/webhooks/"
                                "inbox.sqlite (the service's default). A file never written: no "
                                "events. Events older than a list's bookmark are trimmed."),
        th.Property("mailchimp_inbox_path", th.StringType,
                    description="Deprecated: the inbox as a SQLite file (mailchimp_inbox_url "
                                "wins)."),
        th.Property("forward_audit_store_url", th.StringType, secret=True,
                    description="SQLAlchemy URL of target-mailchimp's audit trail (equal to "
                                "its audit_store_url). Unsubscribes made by the forward flow's "
                                "own opt-outs (blocked accounts, inactive customers) are "
                                "recognised there and left out of mailing_exclusions, so they "
                                "are not written back to Exact. Empty: where target-mailchimp's "
                                "empty audit_store_url puts it (EXACTMC_DATABASE_URL, the "
                                "tenant's schema, else $MELTANO_SYS_DIR_ROOT/target-mailchimp/"
                                "audit.sqlite). Read only; a trail not made yet hides nothing."),
        th.Property("start_date", th.DateTimeType,
                    description="Earliest change read when a list has no bookmark yet. Empty: "
                                "every opt-out and tag there is."),
        th.Property("retry_max_tries", th.IntegerType(minimum=1), default=8,
                    description="Tries per request on 429, 5xx, timeouts, unreadable answers."),
        th.Property("retry_backoff_factor", th.NumberType, default=1.0,
                    description="Base seconds of the exponential backoff between tries."),
        th.Property("request_timeout", th.NumberType, default=60.0,
                    description="Seconds before a request is abandoned (and retried)."),
    ).to_dict()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # Numbers from text (env, `kind: string`) and the store key from the environment, in
        # memory only, before the schema judges the config.
        config: dict[str, Any] = coerce_numbers(self._config, self.config_jsonschema)
        if key := store_key(config, "secret_store_key"):
            config["secret_store_key"] = key
        self._config = config
        return super()._validate_config(raise_errors=raise_errors)

    @property
    def list_ids(self) -> list[str]:
        return [part.strip() for part in str(self.config["list_id"]).split(",") if part.strip()]

    @cached_property
    def reader(self) -> MailchimpReader:
        base_url, auth = connection(self.config)
        return MailchimpReader(base_url, auth, max_tries=int(self.config["retry_max_tries"]),
                               backoff_factor=float(self.config["retry_backoff_factor"]),
                               timeout=float(self.config["request_timeout"]))

    @cached_property
    def forward_trail(self) -> ForwardTrail | None:
        # Empty: where target-mailchimp's empty audit_store_url puts it (the fleet's database).
        return ForwardTrail(self.config.get("forward_audit_store_url") or None)

    def discover_streams(self) -> list[ListStream]:
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]


if __name__ == "__main__":
    TapMailchimp.cli()
