"""Cost centers → Mailchimp tags, and the tags each member should carry."""

from __future__ import annotations

from typing import Any, Protocol

from .lookup_store import Candidate, LookupStore
from .members import text
from .orders import DRAFT_STATUS
from .settings import MappingSettings

SUPPRESSION_TAG_KEY = "rule:do-not-mail"
INACTIVE_TAG_KEY = "rule:inactive"


class AccountTagsCache(Protocol):
    """`account_cost_centers` by (division, account id): a dict, or what a flush gathered."""

    def get(self, key: tuple[int, str]) -> dict[str, str] | None: ...

    def __setitem__(self, key: tuple[int, str], value: dict[str, str]) -> None: ...


def tag_key(division: int, code: str) -> str:
    return f"cc:{division}:{code}"


def tag_name(settings: MappingSettings, division: int, code: str, description: str) -> str:
    name = settings.tag_name_template.format(code=code, description=description, division=division)
    # A template part with an empty description should not leave a dangling separator.
    return name.strip(" ·-") or code


def tag_record(
    cost_center: dict[str, Any], division: int, settings: MappingSettings
) -> dict[str, Any]:
    """A renamed cost center yields a new name (the target renames); inactive removes the tag."""
    code = text(cost_center.get("Code"))
    return {
        "tag_key": tag_key(division, code),
        "name": tag_name(settings, division, code, text(cost_center.get("Description"))),
        "active": cost_center.get("Active") is not False,
    }


def account_cost_centers(
    store: LookupStore, division: int, account_id: str, settings: MappingSettings,
    known_cost_centers: dict[tuple[int, str], dict[str, Any] | None] | None = None,
) -> dict[str, str]:
    """tag_key → tag name for every cost center on the account's (non-draft) invoice lines.
    `known_cost_centers`: a cache of cost-center rows by (division, code), e.g. per flush."""
    cache = {} if known_cost_centers is None else known_cost_centers
    tags: dict[str, str] = {}
    for invoice in store.children("sales_invoices", division, account_id):
        if invoice.get("Status") == DRAFT_STATUS:
            continue
        for line in store.children("sales_invoice_lines", division, invoice["InvoiceID"]):
            add_line_tag(tags, store, division, line, settings, cache)
    return tags


def add_line_tag(
    tags: dict[str, str], store: LookupStore, division: int, line: dict[str, Any],
    settings: MappingSettings, cache: dict[tuple[int, str], dict[str, Any] | None],
) -> None:
    """Add the tag of one (non-draft) invoice line's cost center, if any, to `tags`; a later
    line's name replaces an earlier one's. `cache`: cost-center rows by (division, code)."""
    code = text(line.get("CostCenter"))
    if not code:
        return
    if (division, code) not in cache:
        rows = store.by_number("cost_centers", division, code)
        cache[(division, code)] = rows[0] if rows else None
    known = cache[(division, code)]
    if known and known.get("Active") is False:
        return  # the tag is being removed from everyone; do not add it back
    description = text(known.get("Description")) if known else text(
        line.get("CostCenterDescription"))
    tags[tag_key(division, code)] = tag_name(settings, division, code, description)


def desired_member_tags(
    store: LookupStore,
    candidates: list[Candidate],
    *,
    excluded: bool,
    inactive: bool,
    settings: MappingSettings,
    known_cost_centers: dict[tuple[int, str], dict[str, Any] | None] | None = None,
    known_accounts: AccountTagsCache | None = None,
) -> dict[str, str]:
    """Every tag the email should carry: all its Exact records' accounts' cost centers + rules.
    `known_accounts`: a cache of `account_cost_centers` by (division, account id), e.g. per
    flush (an account's tags go to each of its addresses; the store does not change)."""
    tags: dict[str, str] = {}
    for division, account_id in sorted({(c.division, c.account_id) for c in candidates}):
        found = None if known_accounts is None else known_accounts.get((division, account_id))
        if found is None:
            found = account_cost_centers(store, division, account_id, settings,
                                         known_cost_centers)
            if known_accounts is not None:
                known_accounts[(division, account_id)] = found
        tags.update(found)
    if excluded and settings.excluded_handling == "tag":
        tags[SUPPRESSION_TAG_KEY] = settings.suppression_tag_name
    if inactive and settings.inactive_handling == "tag":
        tags[INACTIVE_TAG_KEY] = settings.inactive_tag_name
    return tags


def member_tag_records(
    email: str,
    desired: dict[str, str],
    previously_active: dict[str, str],
    updated_at: str | None,
) -> list[dict[str, Any]]:
    """Add what is desired; remove what was sent active before and is no longer desired."""
    records = [
        {"email": email, "tag_key": key, "tag_name": name, "active": True,
         "source_updated_at": updated_at}
        for key, name in sorted(desired.items())
    ]
    records += [
        {"email": email, "tag_key": key, "tag_name": name, "active": False,
         "source_updated_at": updated_at}
        for key, name in sorted(previously_active.items()) if key not in desired
    ]
    return records
