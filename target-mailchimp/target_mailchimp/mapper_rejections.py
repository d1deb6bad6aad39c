"""The mapper's dead letters, read for `status` from the mapper's own database.

mapper-exact-mailchimp keeps them in its table `rejections` (docs/contracts.md) beside its
lookup store: `mapper_store_url` names that database as the mapper's `store_url` does, and
empty resolves as the mapper's empty one does (EXACTMC_DATABASE_URL: the tenant's schema
`<tenant>__mapper`; else `$MELTANO_SYS_DIR_ROOT/mapper-exact-mailchimp/lookup.sqlite`).
Reads only: a database the mapper never wrote is "no rejections", and is not created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from secret_store.database import default_sqlite_path, engine_for, store_exists, store_url

MAPPER = "mapper"  # the mapper's component name (its schema: `<tenant>__mapper`)
COLUMNS = ("rejected_at", "stream", "division", "key", "reason")


def mapper_store_url(config: Mapping[str, Any]) -> str:
    return store_url(config.get("mapper_store_url"),
                     default_sqlite_path("mapper-exact-mailchimp", "lookup.sqlite"))


def read_rejections(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every rejection, oldest first: time, stream, division, key, reason (never the value,
    which may hold personal data)."""
    url = mapper_store_url(config)
    if not store_exists(url, MAPPER):
        return []  # connecting would make its file or schema
    engine = engine_for(url, MAPPER)
    try:
        if not sa.inspect(engine).has_table("rejections"):
            return []
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                f"SELECT {', '.join(COLUMNS)} FROM rejections ORDER BY id"))  # noqa: S608
            return [{"time": at, "stream": stream, "division": division, "key": key,
                     "reason": reason} for at, stream, division, key, reason in rows]
    finally:
        engine.dispose()
