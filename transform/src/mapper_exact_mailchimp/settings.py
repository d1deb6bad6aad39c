"""The mapper's settings: JSON schema for `--about`/validation, and a typed view of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from singer_sdk import typing as th

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "store_url", th.StringType,
        description="SQLAlchemy URL (or SQLite file path) of the database remembering every "
        "input row, every output sent and the rejected records (table `rejections`), across "
        "runs. Unset: `lookup_store_path`, else EXACTMC_DATABASE_URL (a fleet's PostgreSQL: "
        "schema `<tenant>__<store_namespace>`), else "
        "$MELTANO_SYS_DIR_ROOT/mapper-exact-mailchimp/lookup.sqlite.",
    ),
    th.Property(
        "lookup_store_path", th.StringType,
        description="Older name of `store_url` (a SQLite file path); `store_url` wins.",
    ),
    th.Property(
        "store_namespace", th.StringType, default="mapper",
        description="The store's name within the database (PostgreSQL schema "
        "`<tenant>__<name>`; default file `<name without mapper_>-lookup.sqlite`): a second "
        "mapper of one company (the reconcile job: `mapper_reconcile`) needs its own.",
    ),
    th.Property(
        "excluded_handling", th.StringType, default="unsubscribe",
        allowed_values=["unsubscribe", "tag"],
        description="Contacts with IsMailingExcluded or of Blocked accounts: `unsubscribe` "
        "(opt_out: true) or `tag` (suppression tag, status_if_new unsubscribed). "
        "Never subscribed either way.",
    ),
    th.Property(
        "suppression_tag_name", th.StringType, default="Do not mail",
        description="Tag name used when excluded_handling is `tag`.",
    ),
    th.Property(
        "tag_name_template", th.StringType, default="CC {code} · {description} ({division})",
        description="Cost-center tag name; placeholders {code}, {description}, {division}.",
    ),
    th.Property(
        "address_state_fallback", th.StringType, default="country",
        allowed_values=["country", "city", "omit"],
        description="Mailchimp needs ADDRESS.state: when Exact's State is empty use the "
        "country name (`country`), the city (`city`), or send no ADDRESS (`omit`).",
    ),
    th.Property(
        "inactive_after_days", th.IntegerType,
        description="Customers (Status C) without an invoice in this many days are suppressed "
        "by `inactive_handling`. Unset: off.",
    ),
    th.Property(
        "inactive_handling", th.StringType, default="tag", allowed_values=["tag", "opt_out"],
        description="`tag` (inactive tag) or `opt_out` (unsubscribe) for inactive customers.",
    ),
    th.Property(
        "inactive_tag_name", th.StringType, default="Inactive customer",
        description="Tag name used for inactive customers.",
    ),
).to_dict()


@dataclass(frozen=True)
class MappingSettings:
    store_url: str | None = None
    lookup_store_path: str | None = None
    store_namespace: str = "mapper"
    excluded_handling: str = "unsubscribe"
    suppression_tag_name: str = "Do not mail"
    tag_name_template: str = "CC {code} · {description} ({division})"
    address_state_fallback: str = "country"
    inactive_after_days: int | None = None
    inactive_handling: str = "tag"
    inactive_tag_name: str = "Inactive customer"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MappingSettings:
        defaults = {
            name: spec["default"]
            for name, spec in CONFIG_SCHEMA["properties"].items()
            if "default" in spec
        }
        known = {**defaults, **{k: v for k, v in config.items() if k in cls.__dataclass_fields__}}
        return cls(**known)
