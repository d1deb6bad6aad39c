"""Find secrets in files: the check the demo and the tests run over everything a run wrote.

A secret counts as found in any form it could have been written in: as is, URL-encoded,
JSON-escaped, or base64 (standard or URL-safe, at any byte alignment, so also inside a Basic
auth header such as `user:secret`).
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path


def secret_forms(value: str) -> dict[str, bytes]:
    """Form name -> bytes for each way `value` could sit in a file."""
    raw = value.encode()
    forms = {"raw": raw, "url": urllib.parse.quote(value, safe="").encode(),
             "url+": urllib.parse.quote_plus(value).encode(),
             "json": value.encode("unicode_escape")}
    for offset in range(3):
        for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * offset + raw)
            # Drop the quads touched by the padding bytes or by the end: the rest is stable.
            core = encoded[((offset + 2) // 3) * 4 : max(0, len(encoded) - 4)]
            if len(core) >= 8:
                forms[f"{name}@{offset}"] = core
    return {name: form for name, form in forms.items() if form}


def find_secrets(
    roots: Iterable[Path], secrets: dict[str, str], changed_since: float = 0.0
) -> list[str]:
    """`path: secret name (form)` for every file under `roots` holding a secret.

    Virtualenvs (a `venv` path part) are read only where a file changed after `changed_since`:
    they hold installed packages, written by `meltano install`, not by a run.
    """
    needles = [(f"{name} ({form})", data) for name, value in secrets.items() if value
               for form, data in secret_forms(value).items()]
    found = []
    for path in files_under(roots):
        try:
            if "venv" in path.parts and path.stat().st_mtime < changed_since:
                continue
            content = path.read_bytes()
        except OSError:
            continue  # removed meanwhile (Meltano cleans up), or a socket
        found += [f"{path}: {label}" for label, data in needles if data in content]
    return found


def files_under(roots: Iterable[Path]) -> Iterator[Path]:
    """Regular files under `roots`, symlinks not followed (what they point at is scanned where
    it lives, when it is under a root)."""
    for root in roots:
        if root.is_file():
            yield root
            continue
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                if path.is_file() and not path.is_symlink():
                    yield path
