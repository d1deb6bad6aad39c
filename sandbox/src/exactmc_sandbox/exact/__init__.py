"""The Exact Online simulator.

Its choices on behaviour the reference notes leave unconfirmed are documented where they are
made: `app.py` (what counts toward the rate limits; no concurrency limit), `ratelimit.py`
(window starts), `errorlimit.py` (the block), `oauth.py` (unknown tokens, lingering old refresh
tokens, the bootstrap grant), `dates.py` (`/Date(ms)/` in Amsterdam wall-clock time),
`store.py` (invoice feed row shape, division moves, sync/Deleted retention), `schema.py`
(receivable status codes, EntityType of cost centers) and `webhooks.py` (validation, Action
casing, topics, no retries, http callbacks).
"""

from exactmc_sandbox.exact.sandbox import ExactSandbox

__all__ = ["ExactSandbox"]
