"""Where the plugins find the store's key: the process environment, never a Meltano setting.

Why: Meltano writes every setting it knows into a plain JSON config file under `.meltano/run/`
(left behind by a kill). A variable it does not know is passed to the plugin process unchanged
and never written anywhere, so the one secret kept outside the store lives only in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

KEY_ENV = "SECRET_STORE_KEY"


def store_key(config: Mapping[str, Any], setting: str) -> str | None:
    """The key from the config (plain-Singer users' choice), else from `SECRET_STORE_KEY`."""
    return config.get(setting) or os.environ.get(KEY_ENV) or None


def restrict_new_files() -> None:
    """Files this process creates from now on are private to its user (0600, dirs 0700).

    Why a umask rather than a chmod per file: SQLite creates journal and WAL files of its own,
    and libraries create files we never see; a umask covers them all from their first byte.
    """
    os.umask(0o077)
