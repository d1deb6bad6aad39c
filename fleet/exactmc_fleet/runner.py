"""Run one tenant's Meltano job: its own system directory, state IDs, stores and secrets.

Why a system directory per tenant: Meltano keeps a plugin's run files (config, catalog, the
state handed to the tap) under `$MELTANO_SYS_DIR_ROOT/run/<plugin>/`, one set per plugin, so two
tenants running at once in one project would read each other's state. Each tenant gets
`<project>/.meltano/tenants/<name>/` whose plugin installations are links to the project's (no
reinstall), and every store's default SQLite file lands there too (`default_sqlite_path`).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from filelock import FileLock
from secret_store.database import DATABASE_URL_ENV, TENANT_ENV
from sqlalchemy.engine import make_url

from exactmc_fleet.registry import Tenant

DEFAULT_JOB = "exactonline-to-mailchimp"
PLUGIN_KINDS = ("extractors", "loaders", "mappers", "utilities")
MELTANO_SCHEMA = "meltano"  # Meltano's own tables in the fleet's PostgreSQL database
TIMED_OUT = 124  # what `timeout(1)` returns
# The plugins' settings as environment variables: a tenant's come from the registry only
# (fleet-wide values belong in meltano.yml).
PLUGIN_SETTING_PREFIXES = ("TAP_EXACTONLINE_", "TARGET_MAILCHIMP_", "TAP_MAILCHIMP_",
                           "TARGET_EXACTONLINE_", "MAPPER_EXACT_MAILCHIMP_", "WEBHOOKS_",
                           "EXACTMC_WEBHOOKS_", "TARGET_JSONL_")


def tenant_sys_dir(project_root: Path, name: str) -> Path:
    return Path(project_root) / ".meltano" / "tenants" / name


def link_plugin_installations(project_root: Path, sys_dir: Path) -> Path:
    """`sys_dir` (0700) whose extractors/loaders/mappers/utilities are the project's."""
    sys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for kind in PLUGIN_KINDS:
        target = Path(project_root) / ".meltano" / kind
        target.mkdir(parents=True, exist_ok=True)  # `meltano install` fills it
        link = sys_dir / kind
        if not link.is_symlink():
            try:
                link.symlink_to(target, target_is_directory=True)
            except FileExistsError:  # a concurrent call (e.g. `add` storing two secrets at once)
                if not link.is_symlink():
                    raise
    return sys_dir


def meltano_database_uri(project_root: Path, env: Mapping[str, str]) -> str:
    """Meltano's system database (its runs and the state backend) for a tenant's run.

    An explicit MELTANO_DATABASE_URI wins; else the fleet's database when it is PostgreSQL
    (Meltano's tables in a schema of their own, via libpq's `options`); else the project's
    `.meltano/meltano.db`, shared by the tenants: their state IDs carry the tenant's name.
    """
    if env.get("MELTANO_DATABASE_URI"):
        return env["MELTANO_DATABASE_URI"]
    fleet = env.get(DATABASE_URL_ENV, "").strip()
    if fleet and make_url(fleet).get_backend_name() == "postgresql":
        return _meltano_schema_uri(fleet)
    return f"sqlite:///{Path(project_root) / '.meltano' / 'meltano.db'}"


@functools.lru_cache(maxsize=8)
def _meltano_schema_uri(fleet_url: str) -> str:
    url = make_url(fleet_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    # Meltano migrates into the first schema of the search_path but does not create it.
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"),
                               {"s": MELTANO_SCHEMA})
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{MELTANO_SCHEMA}"'))
    finally:
        engine.dispose()
    return url.update_query_dict({"options": f"-csearch_path={MELTANO_SCHEMA}"}).render_as_string(
        hide_password=False)


_migrated: set[str] = set()
_migrating = threading.Lock()


def ensure_meltano_database(project_root: Path, env: Mapping[str, str]) -> None:
    """Create Meltano's tables once, before tenants' runs start together.

    Meltano migrates its system database at start-up without a lock: two tenants starting at
    once on a fresh database both create `alembic_version` and one fails. So the first run of
    each database migrates it (`meltano upgrade database`) under a lock: threads of this
    process, and other processes and machines (PostgreSQL advisory lock, else a file lock).
    """
    uri = env["MELTANO_DATABASE_URI"]
    if uri in _migrated:
        return
    with _migrating, _database_lock(uri):
        if uri in _migrated:
            return
        if not _has_meltano_tables(uri):
            result = subprocess.run(  # noqa: S603 (our own meltano, argv without a shell)
                [meltano_executable(), "upgrade", "database"], cwd=Path(project_root),
                env=dict(env), capture_output=True, text=True, check=False, umask=0o077)
            if result.returncode != 0:
                raise RuntimeError("meltano upgrade database failed: "
                                   f"{(result.stdout + result.stderr)[-2000:]}")
        _migrated.add(uri)


def _has_meltano_tables(uri: str) -> bool:
    engine = sa.create_engine(uri)
    try:
        with engine.connect() as connection:
            return "alembic_version" in sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()


@contextmanager
def _database_lock(uri: str) -> Iterator[None]:
    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "meltano.db")
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.migrate.lock"):
            yield
        return
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(hashtext('meltano-migrate'))"))
            try:
                yield
            finally:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(hashtext('meltano-migrate'))"))
    finally:
        engine.dispose()


def tenant_settings(tenant: Tenant) -> dict[str, str]:
    """The tenant's settings as the plugins' environment variables (its `settings` win)."""
    env = {
        "TAP_EXACTONLINE_CLIENT_ID": tenant.exact_client_id,
        "TAP_EXACTONLINE_REGION": tenant.region,
        "TARGET_EXACTONLINE_CLIENT_ID": tenant.exact_client_id,
        "TARGET_EXACTONLINE_REGION": tenant.region,
        "WEBHOOKS_CLIENT_ID": tenant.exact_client_id,
    }
    for prefix in ("TAP_EXACTONLINE", "TARGET_EXACTONLINE"):
        if tenant.divisions:
            env[f"{prefix}_DIVISIONS"] = json.dumps(list(tenant.divisions))
            env[f"{prefix}_ALL_DIVISIONS"] = "false"
        else:
            env[f"{prefix}_ALL_DIVISIONS"] = "true"
    if tenant.list_id:
        env["TARGET_MAILCHIMP_LIST_ID"] = tenant.list_id
        env["TAP_MAILCHIMP_LIST_ID"] = tenant.list_id
    if tenant.store_id:
        env["TARGET_MAILCHIMP_STORE_ID"] = tenant.store_id
    env.update(tenant.settings)
    return env


def tenant_environment(project_root: Path, tenant: Tenant,
                       base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a tenant's `meltano` runs in: `base` (default os.environ) without any
    plugin setting, plus the tenant's settings, system dir, tenant name and Meltano database."""
    project_root = Path(project_root).resolve()
    # A shell set up for one company exports its settings: none of them is this tenant's.
    env = {key: value for key, value in (os.environ if base is None else base).items()
           if not key.startswith(PLUGIN_SETTING_PREFIXES)}
    sys_dir = link_plugin_installations(project_root, tenant_sys_dir(project_root, tenant.name))
    env.update(tenant_settings(tenant))
    env["MELTANO_PROJECT_ROOT"] = str(project_root)
    env["MELTANO_SYS_DIR_ROOT"] = str(sys_dir)
    env[TENANT_ENV] = tenant.name
    env["MELTANO_DATABASE_URI"] = meltano_database_uri(project_root, env)
    env.setdefault("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
    ensure_meltano_database(project_root, env)
    return env


def meltano_executable() -> str:
    """The `meltano` beside this Python (the project's virtualenv), else the one on PATH."""
    beside = Path(sys.executable).with_name("meltano")
    return str(beside) if beside.exists() else "meltano"


def meltano_run_command(tenant: Tenant, job: str = DEFAULT_JOB) -> list[str]:
    """`meltano run` with the tenant's name as state ID suffix: its bookmarks are its own."""
    return [meltano_executable(), "run", "--state-id-suffix", tenant.name, job]


def run_tenant_job(project_root: Path, tenant: Tenant, job: str = DEFAULT_JOB, *,
                   base_env: Mapping[str, str] | None = None, log_path: Path | None = None,
                   timeout: float | None = None) -> int:
    """Run `job` for `tenant` now and wait; Meltano's exit code (124 when it timed out).

    Output goes to `log_path` (appended, 0600) or this process's stdout/stderr.
    """
    env = tenant_environment(project_root, tenant, base_env)
    log = None
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    try:
        process = subprocess.Popen(  # noqa: S603 (our own meltano, argv without a shell)
            meltano_run_command(tenant, job), cwd=Path(project_root), env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT if log else None,
            start_new_session=True,  # a timeout ends Meltano and its plugins together
            umask=0o077,  # what the run writes stays private
        )
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process_group(process)
            return TIMED_OUT
        except BaseException:
            stop_process_group(process)
            raise
    finally:
        if log is not None:
            log.close()


def stop_process_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the run's process group (Meltano and its plugins), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def invoke_for_tenant(project_root: Path, tenant: Tenant, command: str, *args: str,
                      stdin: str | None = None, base_env: Mapping[str, str] | None = None,
                      capture: bool = False) -> int | subprocess.CompletedProcess[str]:
    """`meltano invoke command args` (or `meltano <args>` for command "meltano") as `tenant`.

    The exit code, or the completed process with its output when `capture`.
    """
    argv = [meltano_executable(), *args] if command == "meltano" else [
        meltano_executable(), "invoke", command, *args]
    result = subprocess.run(  # noqa: S603 (our own meltano, argv without a shell)
        argv, cwd=Path(project_root), env=tenant_environment(project_root, tenant, base_env),
        input=stdin, text=True, capture_output=capture, check=False, umask=0o077,
    )
    return result if capture else result.returncode
