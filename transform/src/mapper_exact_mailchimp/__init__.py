"""Singer mapper turning Exact Online streams into Mailchimp audience and e-commerce streams."""
