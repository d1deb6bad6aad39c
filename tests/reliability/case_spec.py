"""What a reliability case is: how to play it, on which sandboxes and settings."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reliability.stage import Factories, Stage
from reliability.verdict import Outcome


@dataclass
class Case:
    name: str
    group: str  # kill, fault, input, parallel, webhook
    play: Callable[[Stage, random.Random], None]
    exact_options: dict[str, Any] = field(default_factory=dict)
    mailchimp_options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    ci: bool = True  # False: only in the soak (bench/soak.py), to keep CI within minutes
    # Cases with their own sandboxes and pipelines (parallel jobs, webhook receiver).
    custom: Callable[[Factories, Path, random.Random], Outcome] | None = None
