"""The findings of a plugin's `check` command, shared by every plugin that has one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING, OK = "error", "warning", "ok"


@dataclass
class CheckReport:
    """Findings of one check: each problem is one sentence that says the fix.

    Exit status: 0 all is well, 1 warnings only, 2 at least one error.
    """

    subject: str
    findings: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, level: str, message: str) -> None:
        self.findings.append({"level": level, "message": message})

    @property
    def status(self) -> str:
        levels = {f["level"] for f in self.findings}
        return ERROR if ERROR in levels else WARNING if WARNING in levels else OK

    @property
    def exit_code(self) -> int:
        return {OK: 0, WARNING: 1, ERROR: 2}[self.status]

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return json.dumps({"check": self.subject, "status": self.status,
                               "findings": self.findings, **self.facts}, indent=2, default=str)
        lines = [f"{f['level'].upper() if f['level'] != OK else 'ok'}: {f['message']}"
                 for f in self.findings]
        summary = {OK: "all is well", WARNING: "warnings only", ERROR: "errors"}[self.status]
        lines.append(f"{self.subject}: {summary}.")
        return "\n".join(lines)
