"""target-exactonline: Mailchimp opt-outs and cost-center tags written back to Exact."""
