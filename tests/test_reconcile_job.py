"""The `reconcile` job as meltano.yml declares it (no Meltano started): its tap can never be
handed a bookmark, its mapper has its own store, its target is in reconcile mode, and its
schedule is a valid month-end interval for Meltano."""

from __future__ import annotations

from typing import Any

import yaml
from e2e_pipeline import ROOT
from meltano.core.schedule import is_valid_cron


def project() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "meltano.yml").read_text())


def plugin(config: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    return next(p for p in config["plugins"][kind] if p["name"] == name)


def test_reconcile_job_reads_everything_into_its_own_stores_and_runs_at_month_end() -> None:
    config = project()
    job = next(j for j in config["jobs"] if j["name"] == "reconcile")
    assert job["tasks"] == [
        "tap-exactonline--reconcile exact-to-mailchimp--reconcile target-mailchimp--reconcile"]

    tap = plugin(config, "extractors", "tap-exactonline--reconcile")
    assert tap["inherit_from"] == "tap-exactonline" and "state" not in tap["capabilities"]
    assert set(tap["capabilities"]) == set(
        plugin(config, "extractors", "tap-exactonline")["capabilities"]) - {"state"}
    assert tap["namespace"] == "tap_exactonline"  # TAP_EXACTONLINE_* settings apply
    assert tap["config"] == {"mark_incomplete_read": True}  # a budget-cut read: no archive

    mapper = plugin(config, "mappers", "mapper-exact-mailchimp--reconcile")
    (mapping,) = mapper["mappings"]
    normal = plugin(config, "mappers", "mapper-exact-mailchimp")
    defaults = {s["name"]: s.get("value") for s in normal["settings"]}
    # Never the sync's ledger: a namespace (schema, or file when no URL) of its own.
    assert mapping["config"]["store_namespace"] != defaults["store_namespace"]
    assert not {"store_url", "lookup_store_path"} & set(mapping["config"])

    target = plugin(config, "loaders", "target-mailchimp--reconcile")
    assert target["config"] == {"reconcile": True} and target["namespace"] == "target_mailchimp"

    (schedule,) = [s for s in config["schedules"] if s["job"] == "reconcile"]
    assert schedule["interval"] == "0 3 L * *" and is_valid_cron(schedule["interval"])
