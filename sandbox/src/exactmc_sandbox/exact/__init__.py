"""The Exact Online simulator."""

from exactmc_sandbox.exact.sandbox import ExactSandbox

__all__ = ["ExactSandbox"]
