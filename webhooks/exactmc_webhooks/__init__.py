"""The webhook service: Exact and Mailchimp deliveries stored durably, debounced runs triggered."""
