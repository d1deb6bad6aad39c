"""Runs the README's example: a CSV "tap" piped into the target, renamed and mapped by
stream_maps (people -> members), with the example's own config file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from target_mailchimp.testing import audit_rows, by_email

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_csv_people_stream_mapped_to_members(mailchimp_sandbox, tmp_path):
    config = json.loads((EXAMPLES / "people-to-members.config.json").read_text())
    # Only the connection differs from the example: the sandbox instead of Mailchimp.
    config.update(api_key=mailchimp_sandbox.api_key, base_url=mailchimp_sandbox.api_base,
                  audit_store_url=f"sqlite:///{tmp_path}/audit.sqlite")
    (tmp_path / "config.json").write_text(json.dumps(config))

    tap = subprocess.run([sys.executable, str(EXAMPLES / "csv_to_singer.py"),
                          str(EXAMPLES / "people.csv")], capture_output=True, check=True)
    subprocess.run([sys.executable, "-m", "target_mailchimp.target", "--config",
                    str(tmp_path / "config.json")], input=tap.stdout, cwd=tmp_path,
                   capture_output=True, check=True, timeout=60)

    members = by_email(mailchimp_sandbox)
    assert set(members) == {"anna.jansen@example.com", "piet@example.com"}
    anna = members["anna.jansen@example.com"]
    assert anna["status"] == "subscribed"
    assert anna["merge_fields"]["FNAME"] == "Anna"
    assert anna["merge_fields"]["CITY"] == "Utrecht"
    assert members["piet@example.com"]["status"] == "transactional"
    [failed] = audit_rows(config, outcome="failed")
    assert failed["record_key"] == "not-an-email"
    assert failed["reason"] == "invalid email address"
