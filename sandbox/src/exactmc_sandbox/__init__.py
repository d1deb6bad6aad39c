"""Faithful local simulators of the Exact Online and Mailchimp APIs."""
