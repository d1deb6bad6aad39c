"""The mapper's dead letters, read for `status` from the mapper's own database.

mapper-exact-mailchimp keeps them in its table `rejections` (docs/contracts.md) beside its
lookup store: `mapper_store_url` names that database as the mapper's `store_url` does, and
empty resolves as the mapper's empty one does (EXACTMC_DATABASE_URL: the tenant's schema
`<tenant>__mapper`; else `$MELTANO_SYS_DIR_ROOT/mapper-exact-mailchimp/lookup.sqlite`).
Reads only: a database the mapper never wrote is "no rejections", and is not created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from secret_store.database import default_sqlite_path, engine_for, store_exists, store_url

MAPPER = "mapper"  # the mapper's component name (its schema: `<tenant>__mapper`)
COLUMNS = ("rejected_at", "stream", "division", "key", "reason")


def mapper_store_url(config: Mapping[str, Any]) -> str:
    return store_url(config.get("mapper_store_url"),
                     default_sqlite_path("mapper-exact-mailchimp", "lookup.sqlite"))


@dataclass
class MapperRejections:
    """The dead letters still open (newest row per record, oldest first) and how many records
    once rejected have since been fixed."""

    open: list[dict[str, Any]] = field(default_factory=list)
    fixed: int = 0


def read_rejections(config: Mapping[str, Any]) -> MapperRejections:
    """The mapper's dead letters: time, stream, division, key, reason (never the value, which
    may hold personal data).

    The table keeps every rejection as history; the mapper's table `reported` holds the ones
    still standing (stream, `<division>:<key>`, reason), cleared when the record comes through
    fine. A record is open when its newest rejection is the one still reported: so a record
    fixed in Exact leaves the report, and is back if it breaks again.
    """
    url = mapper_store_url(config)
    if not store_exists(url, MAPPER):
        return MapperRejections()  # connecting would make its file or schema
    engine = engine_for(url, MAPPER)
    try:
        inspector = sa.inspect(engine)
        if not inspector.has_table("rejections"):
            return MapperRejections()
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                f"SELECT {', '.join(COLUMNS)} FROM rejections ORDER BY id"))  # noqa: S608
            newest = {(stream, division, key): {
                "time": at, "stream": stream, "division": division, "key": key, "reason": reason}
                for at, stream, division, key, reason in rows}
            standing = None  # a store without the mark: every rejection stands
            if inspector.has_table("reported"):
                marks = connection.execute(sa.text("SELECT stream, key, reason FROM reported"))
                standing = {(stream, key): reason for stream, key, reason in marks}
    finally:
        engine.dispose()
    still = [row for (stream, division, key), row in newest.items()
             if standing is None or standing.get((stream, f"{division}:{key}")) == row["reason"]]
    still.sort(key=lambda row: str(row["time"]))
    return MapperRejections(still, len(newest) - len(still))
