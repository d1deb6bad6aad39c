"""Issue 9: a plugin process starts from compiled bytecode, never by compiling its libraries.

uv (Meltano's venv backend here) installs without bytecode by default. Where Python may not
write `__pycache__` (PYTHONDONTWRITEBYTECODE=1, as in many containers and in this CI; or a
read-only venv), every run then compiled singer-sdk, SQLAlchemy, requests, ... again: 0.6 of
the tap's 1.1 CPU-s of fixed start-up cost, the weight that bent its CPU per 1k records at
10k accounts. `--compile-bytecode` in every plugin's pip_url compiles them once, at install.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from e2e_pipeline import ROOT

# plugin type dir, name, the module its executable imports at start-up
PLUGINS = [
    ("extractors", "tap-exactonline", "tap_exactonline.tap"),
    ("loaders", "target-mailchimp", "target_mailchimp.target"),
    ("mappers", "mapper-exact-mailchimp", "mapper_exact_mailchimp.mapper"),
    ("extractors", "tap-mailchimp", "tap_mailchimp.tap"),
    ("loaders", "target-exactonline", "target_exactonline.target"),
    ("loaders", "target-jsonl", "target_jsonl"),
    ("utilities", "webhooks", "exactmc_webhooks.cli"),
    ("utilities", "tenants", "exactmc_fleet.cli"),
]

# Run in the plugin's own Python: every module loaded from the venv's site-packages whose
# bytecode file is missing (the import then compiled it in memory, and would every run).
_MISSING_BYTECODE = """
import importlib, json, os, sys, sysconfig
importlib.import_module(sys.argv[1])
site = sysconfig.get_paths()["purelib"]
missing = sorted(
    name for name, module in list(sys.modules.items())
    if (getattr(module, "__file__", None) or "").startswith(site)
    and (module.__file__ or "").endswith(".py")
    and not os.path.exists(getattr(module, "__cached__", None) or "")
)
print(json.dumps(missing))
"""


@pytest.mark.parametrize(("kind", "name", "module"), PLUGINS, ids=[p[1] for p in PLUGINS])
def test_plugin_libraries_are_installed_compiled(meltano_plugins: None, kind: str, name: str,
                                                 module: str) -> None:
    python = ROOT / ".meltano" / kind / name / "venv" / "bin" / "python"
    assert python.exists(), f"{name} is not installed"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # only what the install wrote counts
    env.pop("PYTHONPYCACHEPREFIX", None)
    done = subprocess.run([str(python), "-c", _MISSING_BYTECODE, module], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    missing = json.loads(done.stdout)
    assert not missing, (f"{len(missing)} modules of {name}'s venv have no bytecode "
                         f"(first: {missing[:5]}): every start compiles them again")
