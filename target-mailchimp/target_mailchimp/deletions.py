"""The `deletions` stream: archive or erase members, cancel or delete orders, drop the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from target_mailchimp.audit import FAILED, SKIPPED, AuditEntry
from target_mailchimp.client import subscriber_hash
from target_mailchimp.operations import Write
from target_mailchimp.run_context import RunContext
from target_mailchimp.values import iso, normalise_email

STREAM = "deletions"
# entity -> (setting with the default action, its default, allowed actions)
ACTIONS = {
    "member": ("member_deletion", "archive", {"archive", "delete_permanent", "ignore"}),
    "order": ("order_deletion", "cancel", {"cancel", "delete", "ignore"}),
}


def _action(record: dict[str, Any], entity: str, label: str,
            config: Mapping[str, Any]) -> tuple[str, AuditEntry | None]:
    """The record's action (or the setting's); an audit entry when nothing is to be sent."""
    setting, default, allowed = ACTIONS[entity]
    action = str(record.get("action") or config.get(setting, default))
    if action not in allowed:
        return action, AuditEntry(STREAM, label, action, FAILED,
                                  reason=f"unknown {entity} action {action!r}")
    if action == "ignore":
        return action, AuditEntry(STREAM, label, "ignore", SKIPPED,
                                  reason=f"{setting} is 'ignore'")
    return action, None


def _member_write(context: RunContext, key: str, action: str) -> Write | AuditEntry:
    email = normalise_email(key)
    if email is None:
        return AuditEntry(STREAM, f"member/{key}", action, FAILED, reason="invalid email")
    path = f"lists/{context.list_id}/members/{subscriber_hash(email)}"
    if action == "archive":
        return Write(STREAM, f"member/{email}", "archive", "DELETE", path, ok_if_missing=True)
    return Write(STREAM, f"member/{email}", "delete_permanent", "POST",
                 f"{path}/actions/delete-permanent", ok_if_missing=True)


def _order_write(store_id: str, key: str, action: str, deleted_at: Any) -> Write:
    path = f"ecommerce/stores/{store_id}/orders/{key}"
    if action == "delete":
        return Write(STREAM, f"order/{key}", "delete", "DELETE", path, ok_if_missing=True)
    body = {"financial_status": "cancelled", "cancelled_at_foreign": iso(deleted_at)}
    return Write(STREAM, f"order/{key}", "cancel", "PATCH", path,
                 {k: v for k, v in body.items() if v}, ok_if_missing=True)


def write_deletions(context: RunContext, records: list[dict[str, Any]]) -> None:
    config = context.config
    entries: list[AuditEntry] = []
    writes: list[Write] = []
    seen: set[tuple[str, str]] = set()
    member_emails: list[str] = []
    for record in records:
        entity, key = str(record.get("entity") or ""), record.get("key")
        label = f"{entity}/{key}"
        if key in (None, ""):
            entries.append(AuditEntry(STREAM, label, "delete", FAILED, reason="missing key",
                                      payload=record))
            continue
        key = str(key)
        if (entity, key) in seen:
            continue
        seen.add((entity, key))
        if entity in ACTIONS:
            action, refusal = _action(record, entity, label, config)
            if refusal:
                entries.append(refusal)
            elif entity == "order":
                writes.append(_order_write(context.ensure_store(), key, action,
                                           record.get("deleted_at")))
            elif isinstance(write := _member_write(context, key, action), Write):
                member_emails.append(write.record_key.removeprefix("member/"))
                writes.append(write)
            else:
                entries.append(write)
        elif entity in ("customer", "product"):
            writes.append(Write(STREAM, label, "delete", "DELETE",
                                f"ecommerce/stores/{context.ensure_store()}/{entity}s/{key}",
                                ok_if_missing=True))
        else:
            entries.append(AuditEntry(STREAM, label, "delete", FAILED,
                                      reason=f"unknown entity {entity!r} "
                                             "(member, order, customer or product)"))
    entries += [r.audit_entry() for r in context.executor.execute(writes)]
    context.audit.record(entries)
    # Archived/erased members are no longer "ours": a later change in Mailchimp is theirs.
    context.audit.forget_members(context.list_id, member_emails)
    context.audience.forget({e.lower() for e in member_emails})
