"""The one op every fleet job is made of: a tenant's `meltano run JOB` as a subprocess.

The command and environment are the fleet runner's (`meltano_run_command`,
`tenant_environment`): the tenant's own Meltano system directory, state ID suffix, stores,
secrets' names and `EXACTMC_TENANT`. What this module adds for Dagster:
- Meltano's output streams line by line into the step's stdout (the "stdout/stderr" view of
  the run in Dagster's UI) and into the tenant's log file, as it happens;
- a non-zero exit is a `Failure` carrying the exit code and the log's last lines, so the op's
  `RetryPolicy` (exponential backoff) retries it and the UI shows why;
- a timeout, and cancelling the run from the UI (or the run worker's death) stops Meltano's
  whole process group, not only `meltano` itself;
- the environment is exactly the runner's (not merged into the run worker's own, as
  `PipesSubprocessClient` does), so nothing of another tenant or of the worker leaks in.
"""

# No `from __future__ import annotations`: Dagster reads the op's config annotation at runtime.
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import dagster as dg

from exactmc_fleet.registry import TenantRegistry
from exactmc_fleet.runner import (
    TIMED_OUT,
    meltano_run_command,
    stop_process_group,
    tenant_environment,
)

TAIL_LINES = 40
STOP_GRACE_SECONDS = 20  # Meltano and the plugins finish their current write on SIGTERM


class MeltanoRunConfig(dg.Config):
    """Per-run options; the webhook sensor sets `sync_scope` (the tap reads only the
    partitions the deliveries named, as the webhook service's own trigger does)."""

    sync_scope: str = ""


def job_name(tenant: str, job: str) -> str:
    """Dagster names allow letters, digits and `_`: `acme__exactonline_to_mailchimp`."""
    return f"{tenant}__{job.replace('-', '_')}"


def op_name(tenant: str, job: str) -> str:
    """The job's one op (op and job names must differ): `acme__exactonline_to_mailchimp__run`."""
    return job_name(tenant, job) + "__run"


def _resolve(command: list[str], env: dict[str, str]) -> list[str]:
    """`meltano` from the environment's PATH, else beside this Python (the project's venv)."""
    found = shutil.which(command[0], path=env.get("PATH"))
    if found is None:
        beside = Path(sys.executable).parent / command[0]
        found = str(beside) if beside.exists() else command[0]
    return [found, *command[1:]]


def _pump(stream: IO[str], log: IO[str], tail: deque[str]) -> None:
    for line in stream:
        log.write(line)
        log.flush()
        sys.stdout.write(line)
        tail.append(line.rstrip("\n"))
    sys.stdout.flush()


def run_meltano(command: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                timeout: float) -> tuple[int | None, list[str]]:
    """Run `command`, streaming its output; (exit code or None on timeout, last lines)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as log:
        process = subprocess.Popen(  # noqa: S603 (our own meltano, argv without a shell)
            _resolve(command, env), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # a timeout or a cancel ends Meltano and its plugins
            umask=0o077)  # what the run writes stays private
        assert process.stdout is not None
        pump = threading.Thread(target=_pump, args=(process.stdout, log, tail), daemon=True)
        pump.start()
        try:
            code: int | None = process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process_group(process, STOP_GRACE_SECONDS)
            code = None
        except BaseException:  # the run was cancelled: Meltano must not go on alone
            stop_process_group(process, STOP_GRACE_SECONDS)
            raise
        pump.join(10)
    return code, list(tail)


def meltano_job_op(tenant_name: str, job: str, *, project_root: Path,
                   registry_url: str | None, retry_policy: dg.RetryPolicy | None,
                   timeout: float, base_env: Mapping[str, str] | None = None,
                   ) -> dg.OpDefinition:
    """The op running `tenant_name`'s Meltano `job`."""

    @dg.op(name=op_name(tenant_name, job), retry_policy=retry_policy,
           tags={"tenant": tenant_name, "meltano_job": job},
           description=f"`meltano run {job}` for tenant {tenant_name}")
    def run_job(context: dg.OpExecutionContext, config: MeltanoRunConfig) -> None:
        # The registry, not the loaded definitions, is the truth at run time (settings may
        # have changed since the code location loaded).
        registry = TenantRegistry(registry_url)
        tenant = registry.get(tenant_name)
        env = tenant_environment(project_root, tenant,
                                 dict(os.environ if base_env is None else base_env))
        if config.sync_scope:
            env["TAP_EXACTONLINE_SYNC_SCOPE"] = config.sync_scope
        command = meltano_run_command(tenant, job)
        log_path = Path(env.get("MELTANO_SYS_DIR_ROOT", project_root / ".meltano")) / (
            "logs") / f"dagster-{context.run_id}.log"
        context.log.info(f"{' '.join(command)} (tenant {tenant_name}; log {log_path})")
        started = time.monotonic()
        started_at = datetime.now(timezone.utc)
        code, tail = run_meltano(command, env, project_root, log_path, timeout)
        seconds = round(time.monotonic() - started, 1)
        exit_code = TIMED_OUT if code is None else code  # as `exactmc-tenants run` records it
        registry.record_run(tenant_name, job, started_at, exit_code)
        metadata = {"exit_code": exit_code, "seconds": seconds,
                    "log": dg.MetadataValue.path(str(log_path))}
        if code != 0:
            reason = f"timed out after {timeout:.0f} s" if code is None else f"exited {code}"
            raise dg.Failure(
                description=f"Tenant {tenant_name}: meltano run {job} {reason}.",
                metadata={**metadata, "log_tail": dg.MetadataValue.md(
                    "```\n" + "\n".join(tail) + "\n```")})
        context.add_output_metadata(metadata)

    return run_job
