"""`tap-exactonline-check`: is the connection to Exact Online healthy, without syncing anything?

What it looks at, in this order (a problem that makes the next step pointless stops there):
1. the settings and the encrypted store: the store key, the client secret, a refresh token;
2. the stored tokens' host against the configured region (a token only works on the host that
   issued it) and their age: Exact's refresh token rotates on every refresh and dies after 30
   days unused, so a token older than WARN_AFTER_DAYS means runs have stopped;
3. Exact itself, with the tap's own authenticator (a refresh it needs is stored exactly like a
   run's, under the store's lock, so a check never loses a rotating token): `current/Me` (the
   access token works; the user's current division) and ONE `system/Divisions` (every
   configured division belongs to the company). That is 2 API calls, plus 1 token call when
   the stored access token is due (older than 570 s); `current/Me` carries no rate limit.

Exit status: 0 all is well, 1 warnings only, 2 at least one error. `--format json` for tools.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from secret_store import SecretStoreError
from secret_store.check_report import ERROR, OK, WARNING, CheckReport
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_exactonline.auth import ExactAuthError, ReauthorizationRequired
from tap_exactonline.credentials import prepare_config, token_store_name
from tap_exactonline.tap import CONFIG_SCHEMA, REGION_HOSTS, TapExactOnline, resolve_base_url
from tap_exactonline.token_store import TokenRecord, TokenStore

DAY = 86400.0
# Exact lets an unused refresh token expire after 30 days; a run every few minutes (or hours)
# keeps it days old at most. From this age on, runs have evidently stopped: warn while there
# is still time to act.
WARN_AFTER_DAYS = 7
EXPIRES_AFTER_DAYS = 30
AUTHORIZE = "`meltano invoke tap-exactonline:authorize`"
SET_SECRET = "`meltano invoke tap-exactonline:set-credential client_secret`"  # noqa: S105


def region_of(base_url: str | None) -> str | None:
    """The region of an Exact host (`https://start.exactonline.be` → be; the sandbox's path
    prefix `http://127.0.0.1:8701/be` → be); None when it cannot be told."""
    if not base_url:
        return None
    for region, host in REGION_HOSTS.items():
        if base_url.rstrip("/") == host:
            return region
    last = urlsplit(base_url).path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in REGION_HOSTS else None


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC")


def _host(base_url: str, region: str | None) -> str:
    return f"{base_url} (region {region})" if region else base_url


class ExactCheck:
    def __init__(self, config: dict[str, Any], clock: Callable[[], float] = time.time) -> None:
        self.raw = config
        self.clock = clock
        self.report = CheckReport("tap-exactonline check")
        self.calls = 0

    def run(self) -> CheckReport:
        config = self._settings()
        if config is not None:
            store = TokenStore(config["token_store_path"], config["token_store_key"],
                               config["client_id"], name=token_store_name(config))
            before = self._tokens(config, store)
            if before is not None:
                self._exact(config, store, before)
        self.report.facts["exact_calls"] = self.calls
        return self.report

    # -- 1. settings and store ---------------------------------------------------------------
    def _settings(self) -> dict[str, Any] | None:
        add = self.report.add
        if not self.raw.get("client_id"):
            add(ERROR, "No client_id is set: set it with `meltano config tap-exactonline set "
                       "client_id <your app's client id>`.")
            return None
        try:
            config = prepare_config(self.raw, CONFIG_SCHEMA)
        except SecretStoreError as exc:
            add(ERROR, f"The encrypted store cannot be read ({exc}): set SECRET_STORE_KEY to the "
                       "key the store was made with.")
            return None
        if not config.get("token_store_key"):
            add(ERROR, "No key for the encrypted store: set the SECRET_STORE_KEY environment "
                       "variable (`secret-store generate-key` makes one for a new store).")
            return None
        if not config.get("client_secret"):
            add(ERROR, f"No client secret in the encrypted store: store it with {SET_SECRET}.")
            return None
        return config

    def _tokens(self, config: dict[str, Any], store: TokenStore) -> TokenRecord | None:
        add = self.report.add
        base_url = resolve_base_url(config)
        try:
            record = store.read()
        except SecretStoreError as exc:
            add(ERROR, f"The token store cannot be read ({exc}): set SECRET_STORE_KEY to the key "
                       "the store was made with.")
            return None
        if not record.refresh_token and not config.get("refresh_token"):
            add(ERROR, f"No Exact tokens are stored under {store.name}: authorize with "
                       f"{AUTHORIZE}.")
            return None
        if record.refresh_token and record.base_url and record.base_url != base_url:
            stored_region, configured = region_of(record.base_url), region_of(base_url)
            fix = (f"set region {stored_region}" if stored_region and not config.get("base_url")
                   else f"set base_url {record.base_url}")
            issuer = _host(record.base_url, stored_region)
            add(ERROR, f"The stored Exact tokens were issued by {issuer} "
                       f"but the tap is set to {_host(base_url, configured)}, and a token only "
                       f"works on the host that issued it: {fix} (`meltano config tap-exactonline "
                       f"{fix}`), or re-authorize on the new host with {AUTHORIZE}.")
            return None
        if record.refresh_started_at is not None:
            add(WARNING, f"A token refresh at {_when(record.refresh_started_at)} got no answer: "
                         "nothing is lost (the previous refresh token stays valid) and the next "
                         "run recovers by itself; run the job once to confirm.")
        if record.issued_at is not None:
            self.report.facts["refresh_token_issued_at"] = _when(record.issued_at)
            age = (self.clock() - record.issued_at) / DAY
            self.report.facts["refresh_token_age_days"] = round(age, 2)
            if age >= EXPIRES_AFTER_DAYS:
                add(ERROR, f"The refresh token is {age:.0f} days old and no run has used Exact "
                           f"since {_when(record.issued_at)}: Exact has expired it (30 days "
                           f"unused), so re-authorize with {AUTHORIZE}.")
                return None
            if age >= WARN_AFTER_DAYS:
                expires = _when(record.issued_at + EXPIRES_AFTER_DAYS * DAY)
                add(WARNING, f"The refresh token is {age:.0f} days old and no run has succeeded "
                             f"since {_when(record.issued_at)} (Exact expires it on {expires} "
                             "if unused): run the job (`meltano run exactonline-to-mailchimp`) "
                             f"or re-authorize with {AUTHORIZE}.")
        return record

    # -- 2. Exact -----------------------------------------------------------------------------
    def _exact(self, config: dict[str, Any], store: TokenStore, before: TokenRecord) -> None:
        from tap_exactonline.divisions import CurrentUserRequest, DivisionsRequest, _records

        add = self.report.add
        tap = TapExactOnline(config=config, validate_config=False, setup_mapper=False)
        base_url = tap.base_url
        try:
            self.calls += 1
            me = _records(CurrentUserRequest(tap=tap), None)
            current = int(me[0]["CurrentDivision"]) if me and me[0].get("CurrentDivision") else None
            configured = [int(d) for d in config.get("divisions") or []]
            anchor = (configured or [current])[0]
            if anchor is None:
                add(ERROR, "Exact's current/Me names no current division: set `divisions` "
                           "(`meltano config tap-exactonline set divisions '[101]'`).")
                return
            self.calls += 1
            rows = _records(DivisionsRequest(tap=tap), {"division": anchor})
        except ReauthorizationRequired as exc:
            add(ERROR, f"Exact refused the refresh token ({exc.args[0].split(' Re-authorize')[0]}"
                       f"): re-authorize with {AUTHORIZE} (and check `region`: a token only works "
                       "on the host that issued it).")
            return
        except ExactAuthError as exc:
            add(ERROR, f"The Exact token could not be refreshed: {exc}")
            return
        except FatalAPIError as exc:
            text = str(exc)
            if "WrongDivision" in text or " 403 " in f" {text}":
                add(ERROR, f"Division {anchor} is not reachable with these tokens ({text}): fix "
                           "`divisions` (`meltano config tap-exactonline set divisions "
                           "'[...]'`) or authorize a user who has access to it.")
            elif text.startswith("401"):
                add(ERROR, f"Exact refused the access token ({text}): check the app's access in "
                           f"Exact Online and re-authorize with {AUTHORIZE}.")
            else:
                add(ERROR, f"Exact refused the check's call ({text}): see the message and the "
                           "tap's settings.")
            return
        except (RetriableAPIError, OSError) as exc:
            add(ERROR, f"Exact did not answer usably ({exc}): check `base_url`/`region` and the "
                       "network, then check again later.")
            return
        finally:
            after = store.read()
            refreshed = after.issued_at != before.issued_at
            self.report.facts["token_refreshed"] = refreshed
            self.calls += int(refreshed)

        add(OK, f"Exact answers at {base_url}: the access token works (refreshed by this "
                f"check: {'yes' if refreshed else 'no, still valid'}).")
        for finding in self.report.findings:
            if refreshed and "refresh token is" in finding["message"]:
                finding["message"] += " (This check renewed it for now.)"
        company = {int(row["Code"]): row for row in rows if row.get("Code") is not None}
        wanted = sorted(company) if config.get("all_divisions") else (configured or [current])
        unknown = [d for d in wanted if d not in company]
        if unknown:
            add(ERROR, f"Division(s) {unknown} are not in this Exact company (it has "
                       f"{sorted(company)}): fix `divisions` (`meltano config tap-exactonline set "
                       "divisions '[...]'`).")
        reachable = [d for d in wanted if d in company]
        if reachable:
            add(OK, "Divisions reachable: " + ", ".join(
                f"{d} ({company[d].get('Description') or '?'})" for d in reachable) + ".")
        self.report.facts["divisions"] = reachable
        self.report.facts["current_division"] = current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tap-exactonline-check",
        description="Check Exact credentials, token store, region and divisions without syncing.")
    parser.add_argument("--config", action="append", default=[],
                        help="Config JSON file (repeatable) or ENV for TAP_EXACTONLINE_* vars.")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    from tap_exactonline.authorize import AuthorizeError, load_config

    try:
        config = load_config(args.config or ["ENV"], required=())
    except AuthorizeError as exc:
        report = CheckReport("tap-exactonline check")
        report.add(ERROR, f"{exc}: fix the --config argument.")
    else:
        report = ExactCheck(config).run()
    print(report.render(args.format))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
