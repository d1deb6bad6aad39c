"""Singer target that keeps a Mailchimp audience in step with a source system."""
