"""The Exact sandbox fixtures come from the sandbox's pytest plugin."""

import logging

logging.getLogger("werkzeug").setLevel(logging.ERROR)
