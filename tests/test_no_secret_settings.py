"""Issue 7 item 8 at the Meltano level: what Meltano writes into a plugin's config file.

Meltano 4.4 writes every setting declared in meltano.yml (and custom `config:` keys) into
`.meltano/run/<plugin>/*.config.json`; other environment variables reach the plugin process
unchanged and are never written down. So the secrets must not be settings.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from e2e_pipeline import ROOT, dump_config, make_project

SECRET_ENV = {
    "SECRET_STORE_KEY": "store-key-value-1234567890",
    "TAP_EXACTONLINE_CLIENT_SECRET": "client-secret-value-123456",
    "TAP_EXACTONLINE_REFRESH_TOKEN": "refresh-token-value-123456",
    "TAP_EXACTONLINE_TOKEN_STORE_KEY": "store-key-value-1234567890",
    "TAP_EXACTONLINE_WEBHOOK_SECRET": "webhook-secret-value-1234",
    "TARGET_MAILCHIMP_API_KEY": "0123456789abcdef0123456789abcdef-us6",
    "TARGET_MAILCHIMP_OAUTH_TOKEN": "oauth-token-value-12345678",
    "TARGET_MAILCHIMP_SECRET_STORE_KEY": "store-key-value-1234567890",
}


def test_no_secret_is_a_meltano_setting() -> None:
    config = yaml.safe_load((ROOT / "meltano.yml").read_text())
    sensitive = {
        (plugin["name"], setting["name"])
        for plugins in config["plugins"].values() for plugin in plugins
        for setting in plugin.get("settings", []) if setting.get("sensitive")
    }
    # A database URL may carry a password: README says to use PGPASSWORD instead.
    assert sensitive <= {("target-mailchimp", "audit_store_url")}


def test_secrets_in_the_environment_never_reach_a_config_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    for plugin in ("tap-exactonline", "target-mailchimp", "mapper-exact-mailchimp"):
        written = str(dump_config(project, plugin, SECRET_ENV))
        for name, value in SECRET_ENV.items():
            assert value not in written, f"{name} written into {plugin}'s config file"
