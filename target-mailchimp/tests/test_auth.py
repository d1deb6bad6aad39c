"""Credentials: API key data center, OAuth metadata quirks, the encrypted secret store."""

from __future__ import annotations

import io

import pytest
from secret_store import SecretStore, generate_key
from target_mailchimp import admin
from target_mailchimp.auth import (
    CredentialsError,
    data_center_from_key,
    load_credentials,
    oauth_api_endpoint,
    resolve_connection,
)
from target_mailchimp.target import TargetMailchimp
from target_mailchimp.testing import by_email, run_target, stream


def test_data_center_comes_from_the_key_suffix():
    assert data_center_from_key("0123abcd-us6") == "us6"
    base, _ = resolve_connection({"api_key": "abc-def-us21"})
    assert base == "https://us21.api.mailchimp.com/3.0"
    with pytest.raises(CredentialsError, match="data-center suffix") as caught:
        data_center_from_key("nosuffixsecret")
    assert "nosuffixsecret" not in str(caught.value)


def test_oauth_metadata_bad_token_is_a_200_with_error(requests_mock):
    requests_mock.get("https://login.mailchimp.com/oauth2/metadata",
                      json={"error": "invalid_token"}, status_code=200)
    with pytest.raises(CredentialsError, match="invalid_token") as caught:
        oauth_api_endpoint("secret-token-value")
    assert "secret-token-value" not in str(caught.value)
    assert requests_mock.last_request.headers["Authorization"] == "OAuth secret-token-value"


def test_oauth_metadata_gives_the_endpoint(requests_mock):
    requests_mock.get("https://login.example.test/oauth2/metadata",
                      json={"dc": "us22", "api_endpoint": "https://us22.api.mailchimp.com"})
    base, auth = resolve_connection({"oauth_token": "tok",
                                     "login_url": "https://login.example.test"})
    assert base == "https://us22.api.mailchimp.com/3.0"
    assert "tok" not in repr(auth)


def test_oauth_token_end_to_end_against_sandbox(mailchimp_sandbox, config):
    config.pop("api_key")
    config.pop("base_url")
    config.update(oauth_token=mailchimp_sandbox.oauth_token, login_url=mailchimp_sandbox.url)
    run_target(config, stream("members", [{"email": "oauth@example.com"}]))
    assert "oauth@example.com" in by_email(mailchimp_sandbox)


def test_wrong_oauth_token_stops_before_writing(mailchimp_sandbox, config):
    config.pop("api_key")
    config.pop("base_url")
    config.update(oauth_token="wrong-token", login_url=mailchimp_sandbox.url)
    with pytest.raises(CredentialsError, match="rejected"):
        run_target(config, stream("members", [{"email": "oauth@example.com"}]))
    assert mailchimp_sandbox.members() == []


def test_credentials_from_the_secret_store(mailchimp_sandbox, config, tmp_path, monkeypatch):
    key = generate_key()
    store_dir = tmp_path / "secrets"
    monkeypatch.setenv("SECRET_STORE_KEY", key)
    monkeypatch.setattr("sys.stdin", io.StringIO(mailchimp_sandbox.api_key + "\n"))
    assert admin.main(["set-credential", "--dir", str(store_dir)]) == 0
    assert mailchimp_sandbox.api_key.encode() not in (store_dir / "mailchimp.enc").read_bytes()
    assert SecretStore(store_dir, key).read("mailchimp") == {"api_key": mailchimp_sandbox.api_key}

    config.pop("api_key")
    config.update(secret_store_path=str(store_dir), secret_store_key=key)
    run_target(config, stream("members", [{"email": "stored@example.com"}]))
    assert "stored@example.com" in by_email(mailchimp_sandbox)


def test_missing_credentials_explain_the_options(tmp_path):
    with pytest.raises(CredentialsError, match="secret_store_path"):
        load_credentials({})
    with pytest.raises(CredentialsError, match="set-credential"):
        load_credentials({"secret_store_path": str(tmp_path), "secret_store_key": generate_key()})


def test_wrong_api_key_is_an_outage_not_a_record_failure(mailchimp_sandbox, config):
    from target_mailchimp.client import OutageError

    config["api_key"] = "0" * 32 + "-us6"
    with pytest.raises(OutageError, match="refused the credentials") as caught:
        run_target(config, stream("members", [{"email": "a@example.com"}]))
    assert config["api_key"] not in str(caught.value)


def test_admin_commands_read_meltano_style_env_config(mailchimp_sandbox, tmp_path, monkeypatch,
                                                      capsys):
    key = generate_key()
    monkeypatch.setenv("TARGET_MAILCHIMP_SECRET_STORE_PATH", str(tmp_path / "secrets"))
    monkeypatch.setenv("TARGET_MAILCHIMP_SECRET_STORE_KEY", key)
    monkeypatch.setenv("TARGET_MAILCHIMP_BASE_URL", mailchimp_sandbox.api_base)
    monkeypatch.setenv("TARGET_MAILCHIMP_LIST_ID", mailchimp_sandbox.list_id)
    monkeypatch.setenv("TARGET_MAILCHIMP_AUDIT_STORE_URL", f"sqlite:///{tmp_path}/a.sqlite")
    monkeypatch.setattr("sys.stdin", io.StringIO(mailchimp_sandbox.api_key + "\n"))
    assert admin.main(["set-credential", "--config", "ENV"]) == 0
    assert admin.main(["replay", "--config", "ENV"]) == 0
    out = capsys.readouterr().out
    assert "0 succeeded" in out and mailchimp_sandbox.api_key not in out


def test_the_audit_url_is_a_secret_setting():
    # A production SQLAlchemy URL carries the database password.
    properties = TargetMailchimp.config_jsonschema["properties"]
    assert properties["audit_store_url"].get("secret") is True


def test_a_fleet_tenant_keeps_its_credential_in_the_fleet_database(
        mailchimp_sandbox, config, tmp_path, monkeypatch, postgres_url):
    """No secret_store_path: set-credential and the target use EXACTMC_DATABASE_URL, under the
    tenant's name (EXACTMC_TENANT), and the project's `.secrets` stays unmade."""
    key = generate_key()
    for name, value in {"SECRET_STORE_KEY": key, "EXACTMC_DATABASE_URL": postgres_url,
                        "EXACTMC_TENANT": "acme", "MELTANO_PROJECT_ROOT": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(mailchimp_sandbox.api_key + "\n"))
    assert admin.main(["set-credential"]) == 0
    assert SecretStore(postgres_url, key, tenant="acme").read("mailchimp") == {
        "api_key": mailchimp_sandbox.api_key}
    assert SecretStore(postgres_url, key, tenant="globex").read("mailchimp") is None

    config.pop("api_key")
    run_target(config, stream("members", [{"email": "fleet@example.com"}]))
    assert "fleet@example.com" in by_email(mailchimp_sandbox)
    assert not (tmp_path / ".secrets").exists()
