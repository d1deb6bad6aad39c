"""Issue 7 item 9: every setting declared in meltano.yml reaches its plugin with the right type,
given as an environment variable or in meltano.yml (and by `meltano config set`).

Meltano writes the plugin's config (`meltano invoke --dump=config` shows that file); the plugin
is then built from it as it would be at run time, and its parsed config is checked.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_pipeline import MELTANO, ROOT, dump_config, make_project
from mapper_exact_mailchimp.mapper import ExactToMailchimpMapper
from tap_exactonline.tap import TapExactOnline
from target_exactonline.target import TargetExactOnline
from target_mailchimp.target import TargetMailchimp

PLUGINS = {
    "tap-exactonline": ("extractors", TapExactOnline),
    "mapper-exact-mailchimp": ("mappers", ExactToMailchimpMapper),
    "target-mailchimp": ("loaders", TargetMailchimp),
    "target-exactonline": ("loaders", TargetExactOnline),
}
# Plugin-side secrets (from the store at run time) the test adds to the dumped config.
RUNTIME_SECRETS = {"tap-exactonline": {"client_secret": "not-a-real-secret"},
                   "target-exactonline": {"client_secret": "not-a-real-secret"}}


def declared(plugin: str) -> list[dict[str, Any]]:
    kind, _ = PLUGINS[plugin]
    config = yaml.safe_load((ROOT / "meltano.yml").read_text())
    return next(p for p in config["plugins"][kind] if p["name"] == plugin)["settings"]


def sample(setting: dict[str, Any], plugin_schema: dict[str, Any], tmp: Path) -> Any:
    """A value for the setting that differs from its default, of the type the plugin wants."""
    name, kind = setting["name"], setting.get("kind", "string")
    wanted = plugin_schema["properties"][name].get("type")
    wanted = {wanted} if isinstance(wanted, str) else set(wanted or [])
    if kind == "options":
        values = [o["value"] for o in setting["options"]]
        return next(v for v in values if v != setting.get("value"))
    if kind == "boolean":
        return not setting.get("value", False)
    if kind == "integer":
        return 3
    if kind == "array":
        return [101, 102]
    if kind == "object":
        return {"phone": "PHONE"}
    if kind == "date_iso8601":
        return "2024-02-03"
    if "number" in wanted or "integer" in wanted:  # a number declared as text
        return 0.25 if "number" in wanted else 4
    if name.endswith("_url") and "audit" in name:
        return f"sqlite:///{tmp / 'audit.sqlite'}"
    if name in ("store_url", "mapper_store_url"):  # the mapper opens its store when built
        return f"sqlite:///{tmp / 'lookup.sqlite'}"
    if name == "store_namespace":
        return "mapper_sample"
    if name.endswith("_url"):
        return "http://127.0.0.1:9/x"
    if name.endswith("_path"):
        return str(tmp / name)
    if name == "tag_name_template":
        return "CC {code}"
    return f"value-of-{name}"


def as_env(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def parsed_by_plugin(plugin: str, config: dict[str, Any]) -> dict[str, Any]:
    _, plugin_class = PLUGINS[plugin]
    instance = plugin_class(config={**config, **RUNTIME_SECRETS.get(plugin, {})},
                            validate_config=True)
    return dict(instance.config)


def assert_typed(received: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        got = received.get(name)
        if isinstance(value, str) and name == "start_date":
            assert date.fromisoformat(str(got)[:10]) == date.fromisoformat(value), name
            continue
        assert got == value and type(got) is type(value), f"{name}: {got!r} != {value!r}"


@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_every_setting_works_from_the_environment_and_from_meltano_yml(
    plugin: str, tmp_path: Path
) -> None:
    _, plugin_class = PLUGINS[plugin]
    settings = declared(plugin)
    values = {s["name"]: sample(s, plugin_class.config_jsonschema, tmp_path) for s in settings}
    prefix = plugin.upper().replace("-", "_") + "_"

    # From the environment (`MELTANO_ENVIRONMENT` off so only these values count).
    project = make_project(tmp_path / "env-project")
    env = {prefix + name.upper(): as_env(value) for name, value in values.items()}
    received = parsed_by_plugin(plugin, dump_config(project, plugin, env))
    assert_typed(received, values)

    # From meltano.yml.
    config = yaml.safe_load((ROOT / "meltano.yml").read_text())
    kind, _ = PLUGINS[plugin]
    definition = next(p for p in config["plugins"][kind] if p["name"] == plugin)
    definition["config"] = copy.deepcopy(values)
    config.pop("environments", None)
    config["default_environment"] = None
    project = make_project(tmp_path / "yml-project", config)
    received = parsed_by_plugin(plugin, dump_config(project, plugin, {}))
    assert_typed(received, values)


def test_a_fraction_set_with_meltano_config_set(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    for name, value in (("request_timeout", "2.5"), ("batch_poll_interval", "0.5")):
        result = subprocess.run(
            [str(MELTANO), "config", "set", "target-mailchimp", name, value], cwd=project,
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
        assert result.returncode == 0, result.stderr[-2000:]
    received = parsed_by_plugin("target-mailchimp", dump_config(project, "target-mailchimp", {}))
    assert_typed(received, {"request_timeout": 2.5, "batch_poll_interval": 0.5})
