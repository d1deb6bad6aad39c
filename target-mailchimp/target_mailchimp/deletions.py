"""The `deletions` stream: archive or erase members, cancel or delete orders, drop the rest."""

from __future__ import annotations

from typing import Any

from target_mailchimp.audit import FAILED, SKIPPED, AuditEntry
from target_mailchimp.client import subscriber_hash
from target_mailchimp.operations import Write
from target_mailchimp.run_context import RunContext
from target_mailchimp.values import iso, normalise_email

MEMBER_ACTIONS = {"archive", "delete_permanent", "ignore"}
ORDER_ACTIONS = {"cancel", "delete", "ignore"}
STREAM = "deletions"


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
        action = record.get("action")
        if entity == "member":
            action = action or config.get("member_deletion", "archive")
            if action not in MEMBER_ACTIONS:
                entries.append(AuditEntry(STREAM, label, str(action), FAILED,
                                          reason=f"unknown member action {action!r}"))
            elif action == "ignore":
                entries.append(AuditEntry(STREAM, label, "ignore", SKIPPED,
                                          reason="member_deletion is 'ignore'"))
            else:
                write = _member_write(context, key, action)
                if isinstance(write, Write):
                    member_emails.append(key.strip().lower())
                    writes.append(write)
                else:
                    entries.append(write)
        elif entity == "order":
            action = action or config.get("order_deletion", "cancel")
            if action not in ORDER_ACTIONS:
                entries.append(AuditEntry(STREAM, label, str(action), FAILED,
                                          reason=f"unknown order action {action!r}"))
            elif action == "ignore":
                entries.append(AuditEntry(STREAM, label, "ignore", SKIPPED,
                                          reason="order_deletion is 'ignore'"))
            else:
                writes.append(_order_write(context.ensure_store(), key, action,
                                           record.get("deleted_at")))
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
