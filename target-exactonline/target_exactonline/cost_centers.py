"""`tags` → Exact cost centers, for tags named by the cost-center tag template.

The forward flow names a cost center's tag `tag_name_template` (default
`CC {code} · {description} ({division})`); the same template read backwards gives the code,
description and division a tag stands for. Then:
- no cost center with that code in that division: reported; created when `create_cost_centers`;
- the tag is exactly what the forward flow would name Exact's cost center: nothing to do (this is
  also how our own writes come back: a rename we made is equal on both sides, so no loop);
- the description differs: Mailchimp's name wins only when the tag changed after the cost
  center (`updated_at` > `Modified`); else Exact's name is put back on the tag in Mailchimp
  (`restore_tag_names`, tag_names.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tap_exactonline.dates import convert_odata_date

from target_exactonline.audit import FAILED, IGNORED, REPORTED, UNCHANGED, WRITTEN, Decision
from target_exactonline.client import ExactRefused
from target_exactonline.lookups import find
from target_exactonline.tag_names import CredentialsError, MailchimpRefused

if TYPE_CHECKING:
    from target_exactonline.run import Run

STREAM = "tags"
DEFAULT_TEMPLATE = "CC {code} · {description} ({division})"
CENTER_FIELDS = ("ID", "Code", "Description", "Modified")
_PLACEHOLDER = re.compile(r"\{(code|description|division)\}")
_PATTERNS = {"code": r"(?P<code>\S+?)", "description": r"(?P<description>.*?)",
             "division": r"(?P<division>\d+)"}


class TagTemplate:
    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        self.template = template
        parts, at = [], 0
        for m in _PLACEHOLDER.finditer(template):
            parts += [re.escape(template[at:m.start()]), _PATTERNS[m.group(1)]]
            at = m.end()
        parts.append(re.escape(template[at:]))
        self.pattern = re.compile("".join(parts), re.DOTALL)
        self.has_division = "{division}" in template

    def parse(self, name: str) -> dict[str, Any] | None:
        """{code, description, division (None when the template has none)}, or None."""
        m = self.pattern.fullmatch(name.strip())
        if not m:
            return None
        found = m.groupdict()
        return {"code": found["code"].strip(), "description": (found.get("description") or
                                                               "").strip(),
                "division": int(found["division"]) if found.get("division") else None}

    def render(self, code: str, description: str, division: int) -> str:
        """What the forward flow names this cost center's tag (the mapper's own rule)."""
        name = self.template.format(code=code, description=description, division=division)
        return name.strip(" ·-") or code


def _moment(value: Any, interpretation: str) -> datetime | None:
    if isinstance(value, datetime):  # the SDK parses `date-time` properties of records
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    value = convert_odata_date(value, interpretation)
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def write_tags(run: Run, records: list[dict[str, Any]]) -> None:
    template = TagTemplate(run.config.get("tag_name_template") or DEFAULT_TEMPLATE)
    wanted: dict[int, dict[str, dict[str, Any]]] = {}  # division → code → record
    for record in records:
        name = str(record.get("name") or "")
        key = str(record.get("segment_id") or name)
        parsed = template.parse(name)
        if parsed is None or not parsed["code"]:
            run.audit.record(Decision(STREAM, key, "cost_center", IGNORED,
                                      f"tag {name!r} is not named by the cost-center template"))
            continue
        divisions = [parsed["division"]] if template.has_division else run.divisions
        for division in divisions:
            if division not in run.divisions:
                run.audit.record(Decision(STREAM, key, "cost_center", IGNORED,
                                          f"division {division} is not a configured division",
                                          division))
                continue
            # The last record of a tag is its newest state.
            wanted.setdefault(division, {})[parsed["code"].lower()] = {**record, **parsed,
                                                                        "key": key}
    for division, by_code in wanted.items():
        rows = find(run.client, division, "hrm/Costcenters", ("Code",),
                    sorted({r["code"] for r in by_code.values()}), CENTER_FIELDS)
        centers = {str(row.get("Code") or "").strip().lower(): row for row in rows}
        for code, tag in sorted(by_code.items()):
            _decide(run, template, division, tag, centers.get(code))


def _decide(run: Run, template: TagTemplate, division: int, tag: dict[str, Any],
            center: dict[str, Any] | None) -> None:
    def decided(operation: str, outcome: str, reason: str, key: str | None = None) -> None:
        run.audit.record(Decision(STREAM, tag["key"], operation, outcome, reason, division,
                                  "Costcenters", key))

    code, description = tag["code"], tag["description"]
    if center is None:
        if not run.config.get("create_cost_centers", False):
            decided("create_cost_center", REPORTED,
                    f"no cost center {code!r}: tag {tag.get('name')!r} has nothing behind it "
                    "(create_cost_centers is off)")
            return
        _create(run, division, code, description, decided)
        return
    exact_name = str(center.get("Description") or "").strip()
    if template.render(str(center["Code"]).strip(), exact_name, division) == \
            str(tag.get("name") or "").strip() or exact_name == description:
        decided("rename_cost_center", UNCHANGED, "the tag already names Exact's cost center",
                center["ID"])
        return
    interpretation = run.config.get("date_interpretation") or "amsterdam_wall_clock"
    modified = _moment(center.get("Modified"), interpretation)
    updated = _moment(tag.get("updated_at"), "utc")
    if updated is None or modified is None or updated <= modified:
        why = (f"Exact's description {exact_name!r} is as new or newer ({modified}) than the "
               f"tag's {description!r} ({updated})")
        _put_back(run, tag, template.render(str(center["Code"]).strip(), exact_name, division),
                  why, lambda outcome, reason: decided("restore_tag_name", outcome, reason,
                                                       center["ID"]))
        return
    try:
        run.client.put(f"{division}/hrm/Costcenters(guid'{center['ID']}')",
                       {"Description": description})
    except ExactRefused as exc:
        decided("rename_cost_center", FAILED, str(exc), center["ID"])
        return
    decided("rename_cost_center", WRITTEN,
            f"Description {exact_name!r} → {description!r} (tag renamed {updated}, cost center "
            f"modified {modified})", center["ID"])


def _put_back(run: Run, tag: dict[str, Any], name: str, why: str, decided: Any) -> None:
    """Exact's name on the Mailchimp tag again (tag_names.py: why the way back does it)."""
    if not run.config.get("restore_tag_names", True):
        decided(REPORTED, f"{why}; restore_tag_names is off, the tag keeps its name")
        return
    if not tag.get("list_id") or tag.get("segment_id") is None:
        decided(FAILED, f"{why}; the record names no list_id/segment_id to rename")
        return
    try:
        run.mailchimp_tags.rename(str(tag["list_id"]), int(tag["segment_id"]), name)
    except (CredentialsError, MailchimpRefused) as exc:
        decided(FAILED, f"{why}; renaming the tag back to {name!r} failed: {exc}")
        return
    decided(WRITTEN, f"{why}: tag {tag.get('name')!r} renamed back to {name!r} in Mailchimp")


def _create(run: Run, division: int, code: str, description: str, decided: Any) -> None:
    try:
        created = run.client.post(f"{division}/hrm/Costcenters",
                                  {"Code": code, "Description": description or code})
    except ExactRefused as exc:
        # A create whose answer was lost is refused as a duplicate when retried: look again.
        again = find(run.client, division, "hrm/Costcenters", ("Code",), [code], CENTER_FIELDS)
        if again and str(again[0].get("Description") or "") == (description or code):
            decided("create_cost_center", WRITTEN, "created (its first answer was lost)",
                    again[0]["ID"])
        else:
            decided("create_cost_center", FAILED, str(exc))
        return
    decided("create_cost_center", WRITTEN, f"created {code!r} {description!r}", created["ID"])
