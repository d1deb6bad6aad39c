"""Singer tap reading what flows back from Mailchimp: opt-outs, tags and address changes."""
