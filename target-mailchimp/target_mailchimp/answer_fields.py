"""Partial answers: ask Mailchimp only for the keys we read, and keep only those (issue 9).

Mailchimp documents `fields` / `exclude_fields` query parameters on its endpoints ("Partial
responses": comma-separated, sub-objects in dot notation, `new_members.email_address`; lists are
walked item by item). Our reference notes do not mention them, and the batch guide says an
operation's `params` are "only used for GET", so whether a write (or a `/batches` operation of
one) honours them is unconfirmed: the selection is sent, AND applied here to every answer as
soon as it is parsed, so what the target holds is the same small answer whatever the server
sent back. Nothing may assume a key is absent: a key is read with `.get`, as always.
Only keys each endpoint's answer really has are named (Mailchimp documents an error for a
field it does not know).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# key -> subtree, or None for "all of it".
Tree = dict[str, Any]
_MISSING = object()


@lru_cache(maxsize=64)
def selection(fields: str | None, required: tuple[str, ...] = ()) -> str | None:
    """`fields` plus the top-level keys an answer must have (`Write.expect`) that it does not
    name already: an answer without them would be unreadable, and sent again forever. Cached:
    every write of a job asks for it twice (its request and its answer)."""
    if not fields:
        return None
    paths = [f.strip() for f in fields.split(",") if f.strip()]
    named = {path.split(".", 1)[0] for path in paths}
    return ",".join([*paths, *(key for key in required if key not in named)])


@lru_cache(maxsize=64)
def tree(fields: str | None) -> Tree | None:
    """The selection as a tree, walked once per answer; None keeps answers whole. Cached: a
    job's writes share a few selections (the tree is shared: never change it)."""
    if not fields:
        return None
    root: Tree = {}
    for path in (f.strip().split(".") for f in fields.split(",") if f.strip()):
        node = root
        for index, part in enumerate(path):
            if index == len(path) - 1:
                node[part] = None  # all of it, whatever deeper paths said
                break
            child = node.get(part, _MISSING)
            if child is None:
                break  # already all of it
            if child is _MISSING:
                child = node[part] = {}
            node = child
    return root


def pick(data: Any, selected: Tree | None) -> Any:
    """Only the selected keys of `data` (a JSON answer); lists are walked item by item."""
    if selected is None:
        return data
    if isinstance(data, list):
        return [pick(item, selected) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, sub in selected.items():
        value = data.get(key, _MISSING)
        if value is not _MISSING:
            out[key] = value if sub is None else pick(value, sub)
    return out
