"""Companies and divisions: who owns which division, and each division's row-version counter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

REGIONS = ("nl", "be", "de", "fr", "es", "uk", "us")


@dataclass
class Company:
    id: str
    name: str
    region: str
    current_division: int
    user_id: str
    user_name: str
    full_name: str
    email: str
    language: str
    divisions: list[int] = field(default_factory=list)


@dataclass
class Division:
    code: int
    description: str
    country: str
    currency: str
    company: Company
    hid: int
    created: datetime
    main: bool = False
    move_date: datetime | None = None
    # Exact's Timestamp is a row version of the division's database (SQL rowversion): unique
    # and increasing, not a time. Each division counts on its own.
    next_timestamp: int = 10_000_000

    def take_timestamp(self) -> int:
        self.next_timestamp += 1
        return self.next_timestamp
