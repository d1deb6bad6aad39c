"""The service's settings: from a JSON file, or from the environment as Meltano passes them.

Meltano gives a utility its settings as `WEBHOOKS_<NAME>` variables (its plugin name) and
`EXACTMC_WEBHOOKS_<NAME>` (its namespace); `--config ENV` reads those. No secret is a setting:
the Exact webhook secret and the Mailchimp callback secret live in the encrypted store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIXES = ("WEBHOOKS_", "EXACTMC_WEBHOOKS_")
# Commands run without a shell, so the tap's setting goes in through `env` (a Meltano setting
# as an environment variable): the same job and state ID as the schedule's, which reads all.
EXACT_TRIGGER_COMMAND = (
    "env TAP_EXACTONLINE_SYNC_SCOPE=pending_webhooks meltano run exactonline-to-mailchimp")


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # string | integer | number | boolean
    default: Any
    description: str


SETTINGS = [
    Setting("client_id", "string", None,
            "OAuth client id of the Exact app (names the store entry holding the Exact webhook "
            "secret, as the tap's client_id does)."),
    Setting("token_store_name", "string", None,
            "The tap's store entry, when it sets one (default exactonline-<client_id>)."),
    Setting("secret_store_path", "string", None,
            "The encrypted store (key in SECRET_STORE_KEY): a directory or a database URL. "
            "Default: EXACTMC_DATABASE_URL, else $MELTANO_PROJECT_ROOT/.secrets."),
    Setting("inbox_url", "string", None,
            "Database of both webhook inboxes (a SQLAlchemy URL or a SQLite file), read by "
            "tap-exactonline (webhook_inbox_url) and tap-mailchimp (mailchimp_inbox_url). "
            "Default: EXACTMC_DATABASE_URL, else $MELTANO_SYS_DIR_ROOT/webhooks/inbox.sqlite "
            "(the taps' default too)."),
    Setting("webhook_inbox_path", "string", None,
            "Deprecated: the Exact inbox as a SQLite file of its own (inbox_url wins)."),
    Setting("mailchimp_inbox_path", "string", None,
            "Deprecated: the Mailchimp inbox as a SQLite file of its own (inbox_url wins)."),
    Setting("mailchimp_secret_name", "string", "mailchimp-webhook",
            "Store entry holding the secret of the Mailchimp callback URL."),
    Setting("trigger_command", "string", EXACT_TRIGGER_COMMAND,
            "Command run (debounced) after Exact deliveries; empty: no trigger. The default "
            "runs the job with the tap's sync_scope pending_webhooks: only the stream/division "
            "partitions the deliveries named are read (the schedule still reads everything)."),
    Setting("mailchimp_trigger_command", "string", "meltano run mailchimp-to-exactonline",
            "Command run (debounced) after Mailchimp unsubscribe/cleaned events; empty: none."),
    Setting("debounce_seconds", "number", 2.0,
            "Quiet time after the last delivery before a run starts (a burst is one run)."),
    Setting("max_delay_seconds", "number", 30.0,
            "Longest a run waits behind a steady stream of deliveries."),
    Setting("min_interval_seconds", "number", 0.0,
            "Least time between the starts of two triggered runs of one command (each "
            "whole-job run costs ~1 Exact call per stream and division)."),
    Setting("retry_backoff_seconds", "number", 60.0,
            "Wait before retrying a failed run when no delivery comes first; doubles, "
            "up to 15 minutes (the schedule's interval)."),
    Setting("fleet", "boolean", False,
            "Serve every tenant of the fleet's registry too: /exact/<tenant> and "
            "/mailchimp/<tenant>/<secret>, each checked with that tenant's secrets, recorded in "
            "its inbox and turned into a Dagster run request (run_requests), not a local run; "
            "an empty trigger_command / mailchimp_trigger_command still turns one off."),
    Setting("fleet_registry_url", "string", None,
            "Fleet mode: the tenant registry's database (run_requests too). Default: "
            "EXACTMC_DATABASE_URL, else $MELTANO_PROJECT_ROOT/.meltano/fleet/tenants.sqlite."),
    Setting("webhook_max_body_bytes", "integer", 65536,
            "Largest delivery accepted, in bytes; a larger one gets 413 unread."),
    Setting("webhook_client_timeout", "integer", 10,
            "Seconds a connection may stay silent, or take to send one request."),
    Setting("webhook_max_connections", "integer", 100,
            "Open connections served at once; more wait in the listen backlog."),
    Setting("webhook_threads", "integer", 4,
            "Worker threads that verify and record complete deliveries."),
]
# Allowed in a config file of the user's own (never a Meltano setting): wins over the store.
FILE_ONLY_SECRETS = ("webhook_secret", "mailchimp_webhook_secret", "secret_store_key")


TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _typed(setting: Setting, value: Any) -> Any:
    if value is None or setting.kind == "string":
        return value
    if setting.kind == "boolean":
        text = str(value).strip().lower()
        if text not in TRUE + FALSE:
            raise ValueError(f"{setting.name} must be true or false, not {value!r}")
        return text in TRUE
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{setting.name} must be a number, not {value!r}") from None
    if setting.kind == "integer":
        if number != int(number) or number < 1:
            raise ValueError(f"{setting.name} must be a positive integer, not {value!r}")
        return int(number)
    if number < 0:
        raise ValueError(f"{setting.name} must not be negative")
    return number


def load_config(source: str) -> dict[str, Any]:
    """Every setting typed and defaulted, from a JSON file or `ENV`."""
    given: dict[str, Any] = {}
    if source == "ENV":
        for setting in reversed(SETTINGS):  # plugin-name prefix wins over the namespace's
            for prefix in reversed(ENV_PREFIXES):
                value = os.environ.get(prefix + setting.name.upper())
                if value is not None:  # set but empty: e.g. a trigger command turned off
                    given[setting.name] = value
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"Config file not found: {source}")
        given = json.loads(path.read_text())
        if not isinstance(given, dict):
            raise ValueError("The config file must hold a JSON object")
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        value = given.get(setting.name)
        if value is None or (value == "" and setting.kind not in ("string", "boolean")):
            value = setting.default
        config[setting.name] = _typed(setting, value)
    config.update({name: given[name] for name in FILE_ONLY_SECRETS if given.get(name)})
    return config


def about() -> str:
    """The settings as the `about` command shows them."""
    lines = ["exactmc-webhooks settings (config file keys; WEBHOOKS_<NAME> with --config ENV):"]
    for s in SETTINGS:
        default = "" if s.default is None else f" (default {s.default})"
        lines.append(f"  {s.name} [{s.kind}]{default}: {s.description}")
    return "\n".join(lines)
