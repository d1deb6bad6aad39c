"""Simulator of the Mailchimp Marketing API v3 (see docs/contracts.md, "Sandboxes")."""

from exactmc_sandbox.mailchimp.sandbox import MailchimpSandbox, generate_api_key

__all__ = ["MailchimpSandbox", "generate_api_key"]
