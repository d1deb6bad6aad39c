import multiprocessing
import subprocess
import sys

import pytest
from secret_store import SecretStore, SecretStoreError, generate_key


def test_roundtrip_is_encrypted_at_rest(tmp_path):
    store = SecretStore(tmp_path, generate_key())
    store.write("exactonline-abc", {"refresh_token": "very-secret-refresh"})
    assert store.read("exactonline-abc") == {"refresh_token": "very-secret-refresh"}
    raw = (tmp_path / "exactonline-abc.enc").read_bytes()
    assert b"very-secret-refresh" not in raw
    assert store.read("missing") is None


def test_wrong_key_is_a_clear_error_without_the_key(tmp_path):
    SecretStore(tmp_path, generate_key()).write("x", {"a": 1})
    other = generate_key()
    with pytest.raises(SecretStoreError, match="wrong secret-store key") as info:
        SecretStore(tmp_path, other).read("x")
    assert other not in str(info.value)
    with pytest.raises(SecretStoreError, match="not a valid Fernet key"):
        SecretStore(tmp_path, "not-a-key")


def _increment(directory: str, key: str, times: int) -> None:
    store = SecretStore(directory, key)
    for _ in range(times):
        with store.locked("counter"):
            doc = store.read("counter") or {"n": 0}
            doc["n"] += 1
            store.write("counter", doc)


def test_lock_serialises_processes(tmp_path):
    key = generate_key()
    procs = [
        multiprocessing.Process(target=_increment, args=(str(tmp_path), key, 25))
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert SecretStore(tmp_path, key).read("counter") == {"n": 100}


def test_cli_sets_a_field_from_stdin(tmp_path):
    key = generate_key()
    result = subprocess.run(
        [sys.executable, "-m", "secret_store.cli", "set", "mailchimp", "api_key",
         "--dir", str(tmp_path)],
        input="abc123-us6\n",
        capture_output=True,
        text=True,
        env={"SECRET_STORE_KEY": key, "PATH": ""},
        check=True,
    )
    assert "abc123-us6" not in result.stdout + result.stderr
    assert SecretStore(tmp_path, key).read("mailchimp") == {"api_key": "abc123-us6"}
