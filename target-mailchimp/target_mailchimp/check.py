"""`target-mailchimp-admin check`: can the target write to Mailchimp, without writing anything?

Read-only (it reports what a run would create, never creates it), in this order:
credentials (config or the encrypted store) → `GET /ping` (the key or token works) → `GET /`
(the account, and its data center against the key's) → the audience (`list_id`, or the one
named `list_name`) → the e-commerce store (`store_id`: exists and tied to this audience, or can
be created) → the merge fields the connector writes → the tags it uses. At most 7 calls.

Exit status: 0 all is well, 1 warnings only, 2 at least one error. `--format json` for tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from secret_store import store_key
from secret_store.check_report import ERROR, OK, WARNING, CheckReport
from secret_store.settings import coerce_numbers

from target_mailchimp.auth import CredentialsError, load_credentials
from target_mailchimp.client import ApiError, MailchimpClient, MailchimpError
from target_mailchimp.merge_fields import parse_merge_field_map
from target_mailchimp.run_context import build_client

SET_CREDENTIAL = "`meltano invoke target-mailchimp:set-credential`"
# The merge tags mapper-exact-mailchimp writes (transform/…/members.py; it runs in another
# virtualenv, so they are named here) and its default tag names (its settings
# `suppression_tag_name`, `inactive_tag_name`). Cost-center tags come and go with Exact's data.
CONNECTOR_MERGE_TAGS = ("FNAME", "LNAME", "COMPANY", "PHONE", "ACCCODE", "RELSTATUS", "COUNTRY",
                        "ADDRESS")
CONNECTOR_TAGS = ("Do not mail", "Inactive customer")


def prepare_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """As the target prepares it: numbers from text, the store key from SECRET_STORE_KEY."""
    from target_mailchimp.target import TargetMailchimp

    prepared = coerce_numbers(dict(config), TargetMailchimp.config_jsonschema)
    if key := store_key(prepared, "secret_store_key"):
        prepared["secret_store_key"] = key
    return prepared


def _data_center(base_url: str) -> str | None:
    host = urlsplit(base_url).hostname or ""
    return host.split(".", 1)[0] if host.endswith(".api.mailchimp.com") else None


class MailchimpCheck:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = prepare_config(config)
        self.report = CheckReport("target-mailchimp check")
        self.calls = 0

    def run(self) -> CheckReport:
        try:
            client = self._connect()
            if client is not None:
                try:
                    list_id = self._audience(client)
                    if list_id:
                        self._store(client, list_id)
                        self._merge_fields(client, list_id)
                        self._tags(client, list_id)
                finally:
                    client.close()
        except MailchimpError as exc:
            self.report.add(ERROR, f"Mailchimp did not answer usably ({exc}): check `base_url` "
                                   "and the network, then check again later.")
        self.report.facts["mailchimp_calls"] = self.calls
        return self.report

    def _get(self, client: MailchimpClient, path: str, **params: Any) -> Any:
        self.calls += 1
        return client.get(path, **params)

    def _connect(self) -> MailchimpClient | None:
        add = self.report.add
        try:
            credentials = load_credentials(self.config)
            client = build_client({**self.config, "retry_max_tries": min(
                3, int(self.config.get("retry_max_tries") or 3))})
        except CredentialsError as exc:
            add(ERROR, f"{str(exc).rstrip('.')}: store the API key with {SET_CREDENTIAL} "
                       "(value on stdin), and set SECRET_STORE_KEY.")
            return None
        kind = "API key" if credentials.api_key else "OAuth token"
        try:
            self._get(client, "ping")
            account = self._get(client, "")
        except MailchimpError as exc:
            if "refused the credentials" in str(exc):
                add(ERROR, f"Mailchimp refused the {kind} ({str(exc).split(': ', 1)[-1]}): "
                           f"store a valid one with {SET_CREDENTIAL}.")
                client.close()
                return None
            raise
        key_dc = (credentials.api_key or "").rpartition("-")[2] or None
        # The account root names its data center (`dc`; unconfirmed in the real API): a key
        # whose suffix names another one is a key of another account, or a mistyped suffix.
        account_dc = account.get("dc") if isinstance(account, dict) else None
        url_dc = _data_center(client.base_url)
        if key_dc and url_dc and key_dc != url_dc:
            add(ERROR, f"The API key is for data center {key_dc} but base_url points at "
                       f"{url_dc}: remove base_url (`meltano config target-mailchimp unset "
                       "base_url`) or fix it.")
        elif key_dc and account_dc and key_dc != account_dc:
            add(ERROR, f"The API key ends in -{key_dc} but its account lives in data center "
                       f"{account_dc}: store the key exactly as Mailchimp shows it with "
                       f"{SET_CREDENTIAL}.")
        dc = account_dc or key_dc or url_dc
        self.report.facts["data_center"] = dc
        self.report.facts["account"] = account.get("account_name") if account else None
        add(OK, f"The {kind} works: account {account.get('account_name')!r}, data center {dc} "
                f"({client.base_url}).")
        return client

    def _audience(self, client: MailchimpClient) -> str | None:
        add = self.report.add
        list_id, name = self.config.get("list_id"), self.config.get("list_name")
        if list_id:
            try:
                found = self._get(client, f"lists/{list_id}", fields="id,name")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                add(ERROR, f"The audience {list_id!r} does not exist in this Mailchimp account"
                           f"{self._known_lists(client)}: set list_id to one of its audiences "
                           "(`meltano config target-mailchimp set list_id <id>`).")
                return None
            add(OK, f"Audience {found.get('name')!r} ({list_id}) exists.")
            self.report.facts["list_id"] = list_id
            return str(list_id)
        if not name:
            add(ERROR, "Neither list_id nor list_name is set: set list_id (`meltano config "
                       "target-mailchimp set list_id <id>`).")
            return None
        self.calls += 1
        for audience in client.paginate("lists", "lists", {"fields": "lists.id,lists.name"}):
            if audience.get("name") == name:
                add(OK, f"Audience {name!r} ({audience['id']}) exists.")
                self.report.facts["list_id"] = audience["id"]
                return str(audience["id"])
        add(ERROR, f"No audience named {name!r} in this Mailchimp account: create it in "
                   "Mailchimp or set list_id to an existing audience.")
        return None

    def _known_lists(self, client: MailchimpClient) -> str:
        self.calls += 1
        names = [f"{a.get('name')!r} ({a.get('id')})" for a in client.paginate(
            "lists", "lists", {"fields": "lists.id,lists.name"})]
        return f" (it has {', '.join(names)})" if names else " (it has no audience)"

    def _store(self, client: MailchimpClient, list_id: str) -> None:
        store_id = self.config.get("store_id")
        if not store_id:
            self.report.add(OK, "No store_id: e-commerce streams are not written.")
            return
        try:
            store = self._get(client, f"ecommerce/stores/{store_id}", fields="id,list_id,name")
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.report.add(OK, f"The e-commerce store {store_id!r} does not exist yet; the "
                                "first run creates it on this audience.")
            return
        if str(store.get("list_id")) != list_id:
            self.report.add(ERROR, f"The e-commerce store {store_id!r} belongs to audience "
                                   f"{store.get('list_id')!r}, not {list_id!r} (a store's "
                                   "audience cannot change): set store_id to a new id "
                                   "(`meltano config target-mailchimp set store_id <new id>`).")
            return
        self.report.add(OK, f"The e-commerce store {store_id!r} exists on this audience.")

    def _merge_fields(self, client: MailchimpClient, list_id: str) -> None:
        self.calls += 1
        existing = {f.get("tag"): f for f in client.paginate(
            f"lists/{list_id}/merge-fields", "merge_fields", {"fields": "merge_fields.tag,"
                                                                        "merge_fields.type"})}
        mapped = [spec.tag for spec in parse_merge_field_map(
            self.config.get("merge_field_map")).values()]
        needed = list(dict.fromkeys((*CONNECTOR_MERGE_TAGS, *mapped)))
        missing = [tag for tag in needed if tag not in existing]
        self.report.facts["merge_fields_missing"] = missing
        if not missing:
            self.report.add(OK, f"Merge fields present: {', '.join(needed)}.")
        elif self.config.get("create_missing_merge_fields", True):
            self.report.add(OK, f"Merge fields {', '.join(missing)} are missing; the first run "
                                "creates them (create_missing_merge_fields).")
        else:
            self.report.add(WARNING, f"Merge fields {', '.join(missing)} are missing and "
                                     "create_missing_merge_fields is off, so their values are "
                                     "left out: create them in Mailchimp or turn the setting "
                                     "on.")

    def _tags(self, client: MailchimpClient, list_id: str) -> None:
        self.calls += 1
        names = {s.get("name") for s in client.paginate(
            f"lists/{list_id}/segments", "segments",
            {"type": "static", "fields": "segments.id,segments.name"})}
        missing = [t for t in CONNECTOR_TAGS if t not in names]
        self.report.facts["tags_missing"] = missing
        if missing:
            self.report.add(OK, f"Tags {', '.join(repr(t) for t in missing)} do not exist yet; "
                                "the first run that needs them creates them.")
        else:
            self.report.add(OK, "Tags present: " + ", ".join(repr(t) for t in CONNECTOR_TAGS))
