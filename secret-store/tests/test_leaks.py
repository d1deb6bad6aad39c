"""The secrets check finds a secret in every form it could be written in, and nothing else."""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from pathlib import Path

from secret_store.leaks import find_secrets

SECRET = "s3cr3t-Value/with+chars-us6"


def test_each_form_is_found_and_clean_files_are_not(tmp_path: Path) -> None:
    forms = {
        "raw.txt": SECRET.encode(),
        "config.json": json.dumps({"k": SECRET}).encode(),
        "url.log": urllib.parse.quote(SECRET, safe="").encode(),
        "basic.log": b"Authorization: Basic " + base64.b64encode(f"user:{SECRET}".encode()),
        "b64url.bin": b"x" + base64.urlsafe_b64encode(b"ab" + SECRET.encode()),
        "clean.txt": b"nothing here " + SECRET[:-3].encode(),
    }
    (tmp_path / "nested").mkdir()
    for name, content in forms.items():
        (tmp_path / "nested" / name).write_bytes(content)
    os.symlink(tmp_path / "nested" / "raw.txt", tmp_path / "link")  # scanned once, not twice
    found = find_secrets([tmp_path], {"key": SECRET})
    assert {Path(line.split(":")[0]).name for line in found} == set(forms) - {"clean.txt"}
    assert not any("link" in line for line in found)
