"""The end-to-end tests' view of one pipeline: isolated Meltano state wired to both sandboxes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from secret_store import SecretStore
from secret_store.leaks import find_secrets

ROOT = Path(__file__).resolve().parent.parent
MELTANO = ROOT / ".venv" / "bin" / "meltano"
PIPELINE = ["tap-exactonline", "exact-to-mailchimp", "target-mailchimp"]
STORE_ID = "exact-online"


@dataclass
class Pipeline:
    """One isolated Meltano project state (system db, secrets, stores) wired to the sandboxes."""

    exact: Any
    mailchimp: Any
    workdir: Path
    env: dict[str, str]
    # Every secret value of this pipeline by name (client_secret, refresh_token,
    # mailchimp_api_key, store_key): none may ever be found in a file.
    secrets: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    root = ROOT

    @property
    def inbox_url(self) -> str:
        """The webhook inboxes' database: no setting names it, so the service and both taps
        use their shared default under Meltano's system directory (the workdir's own)."""
        return f"sqlite:///{Path(self.env['MELTANO_SYS_DIR_ROOT']) / 'webhooks' / 'inbox.sqlite'}"

    @staticmethod
    def command(*args: str) -> list[str]:
        return [str(MELTANO), *args]

    def meltano(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run Meltano in this pipeline's environment; its output is kept in the workdir."""
        result = subprocess.run(
            self.command(*args), cwd=ROOT, env=self.env, input=stdin,
            capture_output=True, text=True, timeout=600, check=False,
        )
        with (self.workdir / "meltano-output.log").open("a") as log:
            log.write(result.stdout + result.stderr)
        if check:
            assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
        return result

    def run(
        self, *args: str, plugins: list[str] = PIPELINE, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.meltano("run", *args, *plugins, check=check)

    def invoke(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.meltano("invoke", *args, stdin=stdin)

    def state(self, state_id: str = "dev:tap-exactonline-to-target-mailchimp") -> str:
        return self.meltano("state", "get", state_id).stdout

    def members(self) -> dict[str, dict[str, Any]]:
        return {m["email_address"]: m for m in self.mailchimp.members()}

    def orders(self) -> dict[str, dict[str, Any]]:
        try:
            return self.mailchimp.store(STORE_ID)["orders"]  # keyed by order id
        except KeyError:  # no store yet
            return {}

    def files_with_secrets(self, *extra_roots: Path) -> list[str]:
        """`path: secret name (form)` for each secret found in any file this pipeline's runs
        could have written: the project's `.meltano/` (plugin venvs only where changed since
        the pipeline was made), `.env`, `output/`, the workdir, and `extra_roots`."""
        roots = [ROOT / ".meltano", ROOT / ".env", ROOT / "output", self.workdir, *extra_roots]
        return find_secrets(roots, self.secrets, changed_since=self.started_at)

    def mailchimp_writes(self) -> int:
        by_endpoint = self.mailchimp.calls()["by_endpoint"]
        return sum(n for label, n in by_endpoint.items() if not label.startswith("GET "))


def stop_service(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM (the webhook service finishes what it started), SIGKILL if it hangs."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def install_plugins_once() -> None:
    """`meltano install` once per test run, also under pytest-xdist.

    A second worker's install would rebuild the virtualenvs under the first worker's running
    plugins: the first installs under the lock and leaves the run's id, the others find it.
    Without xdist: once per session.
    """
    from filelock import FileLock

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}"
    marker = ROOT / ".meltano" / "installed-for-test-run"
    marker.parent.mkdir(exist_ok=True)
    with FileLock(str(marker) + ".lock"):
        if marker.exists() and marker.read_text() == run_id:
            return
        result = subprocess.run(
            [str(MELTANO), "install"], cwd=ROOT, capture_output=True, text=True, check=False,
            env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"},
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        marker.write_text(run_id)


def link_plugin_installations(sys_dir: Path) -> Path:
    """A Meltano system dir of its own whose plugin installations are the project's."""
    sys_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("extractors", "loaders", "mappers"):
        link = sys_dir / kind
        if not link.exists():
            link.symlink_to(ROOT / ".meltano" / kind, target_is_directory=True)
    return sys_dir


def make_project(directory: Path, meltano_yml: dict[str, Any] | None = None) -> Path:
    """A copy of this Meltano project in `directory` (its meltano.yml, or `meltano_yml`),
    using the project's installed plugins: for tests that must change meltano.yml."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    config = meltano_yml or yaml.safe_load((ROOT / "meltano.yml").read_text())
    (directory / "meltano.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for source in ("secret-store", "tap-exactonline", "target-mailchimp", "transform",
                   "tap-mailchimp"):
        (directory / source).symlink_to(ROOT / source, target_is_directory=True)
    link_plugin_installations(directory / ".meltano")
    return directory


def dump_config(project: Path, plugin: str, env: dict[str, str]) -> dict[str, Any]:
    """The config file Meltano would write for `plugin` (`meltano invoke --dump=config`)."""
    result = subprocess.run(
        [str(MELTANO), "invoke", "--dump=config", plugin], cwd=project, capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
             "MELTANO_DATABASE_URI": f"sqlite:///{project / 'meltano.db'}", **env},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return json.loads(result.stdout[result.stdout.index("{"):])


def make_pipeline(exact: Any, mailchimp: Any, workdir: Path) -> Pipeline:
    """Settings as environment variables (they win over meltano.yml), all state under workdir.

    Secrets as users keep them: in the encrypted store, its key only in SECRET_STORE_KEY.
    Meltano's system dir is the workdir's own `.meltano/` (its `run/` dirs are not shared with
    other pipelines running at the same time) linking to the project's plugin installations.
    """
    sys_dir = link_plugin_installations(workdir / ".meltano")
    store_key = Fernet.generate_key().decode()
    secrets = {
        "client_secret": exact.client_secret,
        "refresh_token": exact.issue_refresh_token("nl"),
        "mailchimp_api_key": mailchimp.api_key,
        "store_key": store_key,
    }
    store = SecretStore(workdir / "secrets", store_key)
    store.write(f"exactonline-{exact.client_id}-credentials", {
        "client_secret": secrets["client_secret"], "refresh_token": secrets["refresh_token"]})
    store.write("mailchimp", {"api_key": secrets["mailchimp_api_key"]})
    env = {
        **os.environ,
        "MELTANO_ENVIRONMENT": "dev",
        "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
        "MELTANO_SYS_DIR_ROOT": str(sys_dir),
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_EXACTONLINE_BASE_URL": exact.base_url("nl"),
        "TAP_EXACTONLINE_CLIENT_ID": exact.client_id,
        "TAP_EXACTONLINE_ALL_DIVISIONS": "true",
        "TAP_EXACTONLINE_TOKEN_STORE_PATH": str(workdir / "secrets"),
        "SECRET_STORE_KEY": store_key,
        "TARGET_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TARGET_MAILCHIMP_LOGIN_URL": mailchimp.url,
        "TARGET_MAILCHIMP_LIST_ID": mailchimp.list_id,
        "TARGET_MAILCHIMP_AUDIT_STORE_URL": f"sqlite:///{workdir / 'audit.sqlite'}",
        "TARGET_MAILCHIMP_SECRET_STORE_PATH": str(workdir / "secrets"),
        "TAP_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TAP_MAILCHIMP_LOGIN_URL": mailchimp.url,
        "TAP_MAILCHIMP_LIST_ID": mailchimp.list_id,
        "TAP_MAILCHIMP_SECRET_STORE_PATH": str(workdir / "secrets"),
        "TAP_MAILCHIMP_FORWARD_AUDIT_STORE_URL": f"sqlite:///{workdir / 'audit.sqlite'}",
        "TARGET_EXACTONLINE_MAILCHIMP_BASE_URL": mailchimp.api_base,
        "TARGET_EXACTONLINE_MAILCHIMP_LOGIN_URL": mailchimp.url,
        "MAPPER_EXACT_MAILCHIMP_LOOKUP_STORE_PATH": str(workdir / "lookup.sqlite"),
        # What `target-mailchimp:status` reads: the tap's run summary, the mapper's dead letters.
        "TAP_EXACTONLINE_RUN_SUMMARY_PATH": str(workdir / "tap-last-run.json"),
        "TARGET_MAILCHIMP_EXACT_RUN_SUMMARY_PATH": str(workdir / "tap-last-run.json"),
        "TARGET_MAILCHIMP_MAPPER_STORE_URL": str(workdir / "lookup.sqlite"),
    }
    return Pipeline(exact, mailchimp, workdir, env, secrets)
