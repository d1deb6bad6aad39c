"""`exactmc-tenants`: add, list, pause, resume, remove and run the fleet's tenants.

Also a Meltano utility: `meltano invoke tenants list`, `meltano invoke tenants add acme ...`.
Secrets never come from the command line (argv is visible in `ps`): `add` reads the Exact client
secret and the Mailchimp API key from standard input (or prompts on a terminal) and stores them
with the plugins' own `set-credential` commands in the tenant's environment, so they land in the
encrypted store exactly where the tenant's runs read them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from secret_store import KEY_ENV

from exactmc_fleet import teardown
from exactmc_fleet.registry import Tenant, TenantError, TenantRegistry, default_registry_url
from exactmc_fleet.runner import DEFAULT_JOB, invoke_for_tenant, run_tenant_job

REGISTRY_URL_ENV = "TENANTS_REGISTRY_URL"  # the utility's `registry_url` setting


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exactmc-tenants",
        description="The fleet's tenants: one Exact company and one Mailchimp audience each.")
    parser.add_argument("--registry-url", default=os.environ.get(REGISTRY_URL_ENV) or None,
                        help="Registry database (default: EXACTMC_DATABASE_URL, else "
                             "$MELTANO_SYS_DIR_ROOT/fleet/tenants.sqlite, else "
                             "<project>/.meltano/fleet/tenants.sqlite).")
    parser.add_argument("--project-root", type=Path,
                        default=Path(os.environ.get("MELTANO_PROJECT_ROOT") or "."),
                        help="The Meltano project (default: MELTANO_PROJECT_ROOT, else .).")
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", help="Record a tenant, store its secrets, authorize it.")
    add.add_argument("name")
    add.add_argument("--client-id", required=True, help="The Exact app's OAuth client id.")
    add.add_argument("--region", default="nl")
    add.add_argument("--divisions", default="",
                     help="Comma-separated division numbers (default: every division).")
    add.add_argument("--list-id", help="Mailchimp audience id.")
    add.add_argument("--store-id", help="Mailchimp e-commerce store id.")
    add.add_argument("--schedule", default="0 * * * *", help="Cron of the main job.")
    add.add_argument("--set", dest="settings", action="append", default=[],
                     metavar="KEY=VALUE", help="Extra plugin setting as env var (repeatable).")
    add.add_argument("--client-secret-stdin", action="store_true",
                     help="Read the Exact client secret from stdin (its first line).")
    add.add_argument("--mailchimp-key-stdin", action="store_true",
                     help="Read the Mailchimp API key from stdin (the next line).")
    add.add_argument("--no-authorize", action="store_true",
                     help="Do not start the Exact authorization now.")
    add.add_argument("--fetch", action="store_true",
                     help="Authorize by fetching the consent URL (the sandbox approves it).")
    add.add_argument("--paused", action="store_true", help="Add it paused.")

    change = commands.add_parser(
        "set", help="Change a tenant's settings (its state, secrets and last run are kept).")
    change.add_argument("name")
    change.add_argument("--region")
    change.add_argument("--divisions", help="Comma-separated numbers; empty: every division.")
    change.add_argument("--list-id")
    change.add_argument("--store-id")
    change.add_argument("--schedule")
    change.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE", help="Add or change a plugin setting (repeatable).")
    change.add_argument("--unset", action="append", default=[], metavar="KEY",
                        help="Remove a plugin setting (repeatable).")

    authorize = commands.add_parser(
        "authorize", help="(Re-)authorize a tenant's Exact company (OAuth in the browser).")
    authorize.add_argument("name")
    authorize.add_argument("--fetch", action="store_true",
                           help="Fetch the consent URL instead (the sandbox approves it).")

    listing = commands.add_parser("list", help="The tenants and their last run.")
    listing.add_argument("--format", choices=("table", "json"), default="table")

    for verb in ("pause", "resume"):
        commands.add_parser(verb, help=f"{verb.title()} a tenant's scheduled runs.").add_argument(
            "name")

    remove = commands.add_parser(
        "remove", help="Forget a tenant: its row, secrets, state, schemas and files.")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="Really remove it.")

    invoke = commands.add_parser(
        "invoke", help="A plugin command as the tenant (its environment, store namespace and "
                       "database schemas), e.g. `invoke acme tap-exactonline:webhooks-subscribe` "
                       "or `invoke acme target-mailchimp:status`.")
    invoke.add_argument("name")
    invoke.add_argument("plugin_command", metavar="PLUGIN:COMMAND")
    invoke.add_argument("args", nargs=argparse.REMAINDER, help="Passed to the command.")

    run = commands.add_parser("run", help="Run a tenant's job now (refused while paused).")
    run.add_argument("name")
    run.add_argument("job", nargs="?", default=DEFAULT_JOB)
    run.add_argument("--timeout", type=float)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        registry = TenantRegistry(args.registry_url
                                  or default_registry_url(args.project_root.resolve()))
        return _COMMANDS[args.command](registry, args)
    except TenantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:  # no `meltano` beside this Python nor on PATH
        print(f"error: {exc.filename or exc} not found: put the virtualenv holding Meltano on "
              "PATH (e.g. `source .venv/bin/activate`).", file=sys.stderr)
        return 2


def _settings(items: list[str]) -> dict[str, str]:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise TenantError(f"--set {item!r}: expected KEY=VALUE.")
        settings[key] = value
    return settings


def _divisions(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.split(",") if d.strip())
    except ValueError:
        raise TenantError(f"--divisions {text!r}: expected numbers, e.g. 1,2.") from None


def _set(registry: TenantRegistry, args: argparse.Namespace) -> int:
    tenant = registry.get(args.name)
    settings = {k: v for k, v in tenant.settings.items() if k not in args.unset}
    settings.update(_settings(args.settings))
    changed = replace(
        tenant, settings=settings,
        **{field: value for field, value in (
            ("region", args.region), ("list_id", args.list_id), ("store_id", args.store_id),
            ("schedule", args.schedule),
            ("divisions", None if args.divisions is None else _divisions(args.divisions)),
        ) if value is not None})
    registry.update(changed)
    print(f"Tenant {tenant.name} changed.")
    return 0


def _add(registry: TenantRegistry, args: argparse.Namespace) -> int:
    settings = _settings(args.settings)
    divisions = _divisions(args.divisions)
    tenant = Tenant(args.name, args.client_id, region=args.region, divisions=divisions,
                    list_id=args.list_id, store_id=args.store_id, schedule=args.schedule,
                    paused=args.paused, settings=settings)
    if (args.client_secret_stdin or args.mailchimp_key_stdin or not args.no_authorize) and (
            not os.environ.get(KEY_ENV)):
        raise TenantError(f"{KEY_ENV} is not set: the tenant's secrets are stored encrypted "
                          "with it (`secret-store generate-key` makes one).")
    secrets = []  # (plugin command, its args, the secret), in stdin order
    if args.client_secret_stdin:
        secrets.append(("tap-exactonline:set-credential", ["client_secret"],
                        _secret("Exact client secret: ")))
    if args.mailchimp_key_stdin:
        secrets.append(("target-mailchimp:set-credential", [], _secret("Mailchimp API key: ")))
    registry.add(tenant)
    print(f"Tenant {tenant.name} added.")
    # Through the plugins' own commands (so the secrets land where the tenant's runs read
    # them, whatever the store settings), both at once: each is a Meltano start-up.
    with ThreadPoolExecutor(max_workers=2) as pool:
        codes = list(pool.map(lambda item: (item[0], invoke_for_tenant(
            args.project_root, tenant, item[0], *item[1], stdin=item[2] + "\n")), secrets))
    for command, code in codes:
        if code != 0:
            print(f"error: {command} failed ({code}); the tenant is recorded: "
                  f"`exactmc-tenants remove {tenant.name} --yes`, then `add` again.",
                  file=sys.stderr)
            return 1
    if args.no_authorize:
        print(f"Authorize it later: exactmc-tenants authorize {tenant.name}")
        return 0
    return _authorize(registry, args)


def _authorize(registry: TenantRegistry, args: argparse.Namespace) -> int:
    """The Exact OAuth flow in the tenant's environment (its tokens in its namespace)."""
    tenant = registry.get(args.name)
    code = invoke_for_tenant(args.project_root, tenant, "tap-exactonline:authorize",
                             *(["--fetch"] if args.fetch else []))
    if code != 0:
        print(f"error: the authorization of {tenant.name} failed ({code}).", file=sys.stderr)
        return 1
    return 0


def _secret(prompt: str) -> str:
    value = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()
    value = value.strip()
    if not value:
        raise TenantError(f"No value on standard input for {prompt.rstrip(': ')}.")
    return value


def _list(registry: TenantRegistry, args: argparse.Namespace) -> int:
    rows = []
    for tenant in registry.all():
        last = registry.last_run(tenant.name)
        rows.append({
            "name": tenant.name, "region": tenant.region,
            "divisions": list(tenant.divisions) or "all", "audience": tenant.list_id,
            "store": tenant.store_id, "schedule": tenant.schedule, "paused": tenant.paused,
            "last_run": None if last is None else {
                "job": last.job, "started_at": last.started_at, "exit_code": last.exit_code},
        })
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "REGION", "DIVISIONS", "AUDIENCE", "SCHEDULE", "PAUSED", "LAST RUN")
    table = [header] + [(
        row["name"], row["region"],
        ",".join(map(str, row["divisions"])) if row["divisions"] != "all" else "all",
        row["audience"] or "-", row["schedule"], "yes" if row["paused"] else "no",
        "-" if row["last_run"] is None else
        f"{row['last_run']['started_at']} exit {row['last_run']['exit_code']}",
    ) for row in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        cells = (str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _pause(registry: TenantRegistry, args: argparse.Namespace) -> int:
    registry.set_paused(args.name, True)
    print(f"Tenant {args.name} paused: no scheduled or triggered run starts until `resume`.")
    return 0


def _resume(registry: TenantRegistry, args: argparse.Namespace) -> int:
    registry.set_paused(args.name, False)
    print(f"Tenant {args.name} resumed.")
    return 0


def _remove(registry: TenantRegistry, args: argparse.Namespace) -> int:
    tenant = registry.get(args.name)
    if not args.yes:
        print(f"This removes {tenant.name}'s registry row, secrets, Meltano state, database "
              "schemas and files. Add --yes to do it.", file=sys.stderr)
        return 2
    for line in teardown.remove_tenant(args.project_root, tenant):
        print(line)
    registry.remove(tenant.name)
    print(f"Tenant {tenant.name} removed.")
    return 0


def _invoke(registry: TenantRegistry, args: argparse.Namespace) -> int:
    tenant = registry.get(args.name)
    return invoke_for_tenant(args.project_root, tenant, args.plugin_command, *args.args)


def _run(registry: TenantRegistry, args: argparse.Namespace) -> int:
    tenant = registry.get(args.name)
    if tenant.paused:
        print(f"error: tenant {tenant.name} is paused (`exactmc-tenants resume {tenant.name}`).",
              file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc)
    code = run_tenant_job(args.project_root, tenant, args.job, timeout=args.timeout)
    registry.record_run(tenant.name, args.job, started, code)
    return code


_COMMANDS = {"add": _add, "set": _set, "authorize": _authorize, "list": _list,
             "pause": _pause, "resume": _resume, "remove": _remove, "invoke": _invoke,
             "run": _run}


if __name__ == "__main__":
    sys.exit(main())
