"""`ExactSandbox`: the Exact Online simulator as one object (state, app, server)."""

from __future__ import annotations

import secrets
from typing import Any

from exactmc_sandbox.common import CallLog, FaultPlan, ServiceServer, register_control_endpoints
from exactmc_sandbox.exact.app import Components, create_app
from exactmc_sandbox.exact.control import register_exact_control
from exactmc_sandbox.exact.dates import SandboxClock
from exactmc_sandbox.exact.errorlimit import ErrorLimiter
from exactmc_sandbox.exact.model import REGIONS
from exactmc_sandbox.exact.oauth import OAuthError, OAuthSettings, TokenAuthority
from exactmc_sandbox.exact.ratelimit import RateLimiter, RateLimitSettings
from exactmc_sandbox.exact.seed import build as build_seed_data
from exactmc_sandbox.exact.store import DataStore


class ExactSandbox:
    """A seeded, running-on-demand Exact Online simulator.

    Options: seed, accounts_per_division, client_id, client_secret (random when omitted),
    minutely_limit, daily_limit, minute_seconds, day_seconds, access_token_seconds,
    refresh_token_seconds, refresh_too_early_seconds, refresh_linger_seconds, code_seconds,
    webhook_secret (enables webhooks), webhook_validation_delay, webhook_drop_rate (0..1,
    seeded by `seed`), webhook_delay (seconds before each delivery), error_limit (None: off;
    Exact's is 10 errors per endpoint per hour) and error_window_seconds.
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        accounts_per_division: int = 40,
        client_id: str = "exact-sandbox-client",
        client_secret: str | None = None,
        minutely_limit: int = 60,
        daily_limit: int = 5000,
        minute_seconds: float = 60,
        day_seconds: float = 86400,
        access_token_seconds: float = 600,
        refresh_token_seconds: float = 30 * 24 * 3600,
        refresh_too_early_seconds: float = 570,
        refresh_linger_seconds: float | None = None,
        code_seconds: float = 180,
        webhook_secret: str | None = None,
        webhook_validation_delay: float = 1.0,
        webhook_drop_rate: float = 0.0,
        webhook_delay: float = 0.0,
        error_limit: int | None = None,
        error_window_seconds: float = 3600,
        host: str = "127.0.0.1",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.clock = SandboxClock()
        self.store = DataStore(self.clock)
        build_seed_data(self.store, seed, accounts_per_division)
        self.authority = TokenAuthority(
            client_id, self.client_secret,
            OAuthSettings(access_token_seconds, refresh_token_seconds, refresh_too_early_seconds,
                          refresh_linger_seconds, code_seconds),
            self.clock,
        )
        self.limiter = RateLimiter(
            RateLimitSettings(minutely_limit, daily_limit, minute_seconds, day_seconds))
        self.call_log = CallLog()
        self.fault_plan = FaultPlan()
        self.webhooks = None
        if webhook_secret is not None:
            from exactmc_sandbox.exact.webhooks import WebhookHub

            self.webhooks = WebhookHub(self.store, client_id, webhook_secret, self.clock,
                                       validation_delay=webhook_validation_delay,
                                       drop_rate=webhook_drop_rate, delay=webhook_delay,
                                       seed=seed)
            self.webhooks.base_url = self.base_url
        self.errors = ErrorLimiter(error_limit, error_window_seconds)
        self.app = create_app(Components(self.store, self.authority, self.limiter,
                                         self.call_log, self.fault_plan, self.errors,
                                         self.webhooks))
        register_control_endpoints(self.app, self.call_log, self.fault_plan)
        register_exact_control(self.app, self)
        self._server = ServiceServer(self.app, host=host)

    def __repr__(self) -> str:  # never shows the secret
        return f"ExactSandbox(client_id={self.client_id!r})"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        self._server.port = port
        return self._server.start()

    def serve_forever(self, port: int) -> None:
        self._server.port = port
        self._server.serve_forever()

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.stop()
        self._server.stop()

    def __enter__(self) -> ExactSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def base_url(self, region: str = "nl") -> str:
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}")
        return f"{self.url}/{region}"

    # -- OAuth and time -----------------------------------------------------------------------
    def issue_refresh_token(self, region: str = "nl", client_id: str | None = None) -> str:
        """The refresh token a completed authorize flow would leave behind."""
        if region not in self.store.companies:
            raise OAuthError(400, "invalid_request", f"no Exact company on region {region!r}")
        return self.authority.grant_refresh_token(region, client_id or self.client_id)

    def start_new_day(self) -> None:
        """Every division's daily call budget is whole again (Exact's daily reset)."""
        self.limiter.start_new_day()

    def advance_clock(self, seconds: float) -> None:
        """Age tokens and codes (and stamp later mutations) as if `seconds` had passed."""
        self.clock.advance(seconds)

    # -- inspection and faults ----------------------------------------------------------------
    def calls(self) -> dict[str, Any]:
        return self.call_log.snapshot()

    def reset_calls(self) -> None:
        self.call_log.reset()

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self.fault_plan.add(**spec).as_dict()

    def clear_faults(self) -> None:
        self.fault_plan.clear()

    def webhook_deliveries(self, wait: float = 10.0) -> list[dict[str, Any]]:
        """Validation and delivery attempts so far, after pending deliveries have been sent."""
        if self.webhooks is None:
            raise RuntimeError("webhooks are off: create the sandbox with webhook_secret=...")
        self.webhooks.wait_idle(wait)
        return self.webhooks.deliveries()

    # -- data ---------------------------------------------------------------------------------
    def rows(self, entity: str, division: int | None = None) -> list[dict[str, Any]]:
        if entity == "Deleted":
            return self.store.deleted_rows(division)
        return self.store.rows(entity, division)

    def create(self, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.store.create(entity, fields)

    def update(self, entity: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.store.update(entity, key, fields)

    def delete(self, entity: str, key: str) -> None:
        self.store.delete(entity, key)

    def move_division(self, division: int) -> dict[str, Any]:
        return self.store.move_division(division)

    def pay_receivable(self, key: str, paid_at: str | None = None) -> dict[str, Any]:
        paid = self.store.pay_receivable(key, paid_at)
        if self.webhooks is not None:  # announced as a change of the invoice it settles
            invoice = next((i for i in self.store.rows("SalesInvoices", paid["Division"])
                            if i["InvoiceNumber"] == paid["InvoiceNumber"]), None)
            if invoice is not None:
                self.webhooks.announce("SalesInvoices", paid["Division"], "Update",
                                       invoice["InvoiceID"])
        return paid
