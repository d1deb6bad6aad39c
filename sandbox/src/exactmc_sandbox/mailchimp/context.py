"""The settings and live parts of one simulator instance, reachable from any handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

from exactmc_sandbox.common import CallLog, FaultPlan
from exactmc_sandbox.mailchimp.clock import Clock
from exactmc_sandbox.mailchimp.guard import Authenticator, InFlightLimiter
from exactmc_sandbox.mailchimp.state import AccountState
from exactmc_sandbox.mailchimp.webhook_delivery import WebhookDispatcher

if TYPE_CHECKING:
    from exactmc_sandbox.mailchimp.batches import BatchRunner

EXTENSION_KEY = "exactmc_mailchimp"
# Set in the WSGI environ of operations that /batches replays inside the app: they are not
# separate connections, so they skip the in-flight limit, latency, faults and the call count.
INTERNAL_MARK = "exactmc.batch_operation"
# The raw body of such an operation, handed over as is: werkzeug's stream reading cost more
# than decoding the JSON (issue 9).
RAW_BODY = "exactmc.raw_body"


@dataclass(slots=True)
class OperationAnswer:
    """A batch operation's answer as `respond()` gives it back (INTERNAL_MARK set): the JSON
    without a werkzeug Response around it (issue 9: ~8 % of an operation's CPU)."""

    data: bytes
    status_code: int = 200


@dataclass
class Settings:
    api_keys: list[str] = field(repr=False)  # secrets: never in a repr
    oauth_tokens: list[str] = field(repr=False)
    list_id: str
    list_name: str = "Exact Customers"
    dc: str = "us6"
    max_in_flight: int = 10
    latency: float = 0.0  # seconds added to every API request (to make concurrency observable)
    batch_start_delay: float = 0.2  # seconds a /batches job stays "pending"
    batch_operation_delay: float = 0.0  # seconds per operation while "started"
    batch_results_per_file: int = 100  # operations per JSON file in the results archive
    validate_webhooks: bool = True  # GET the URL when a list webhook is created


class MailchimpCallLog(CallLog):
    """The shared call log plus the highest in-flight count seen per credential."""

    def __init__(self, limiter: InFlightLimiter) -> None:
        super().__init__()
        self.limiter = limiter

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        seen = self.limiter.max_seen()
        snap["max_in_flight_seen"] = seen  # credential label -> highest concurrency attempted
        snap["max_in_flight_seen_overall"] = max(seen.values(), default=0)
        return snap

    def reset(self) -> None:
        super().reset()
        self.limiter.reset_max_seen()


@dataclass
class MailchimpContext:
    settings: Settings
    clock: Clock = field(default_factory=Clock)
    faults: FaultPlan = field(default_factory=FaultPlan)
    state: AccountState = field(init=False)
    auth: Authenticator = field(init=False)
    limiter: InFlightLimiter = field(init=False)
    calls: MailchimpCallLog = field(init=False)
    batches: BatchRunner = field(init=False)
    webhooks: WebhookDispatcher = field(init=False)

    def __post_init__(self) -> None:
        self.state = AccountState(self.clock)
        self.state.add_list(self.settings.list_id, self.settings.list_name)
        self.auth = Authenticator(self.settings.api_keys, self.settings.oauth_tokens)
        self.limiter = InFlightLimiter(self.settings.max_in_flight)
        self.calls = MailchimpCallLog(self.limiter)
        self.webhooks = WebhookDispatcher(self.clock)


def ctx() -> MailchimpContext:
    return current_app.extensions[EXTENSION_KEY]
