"""The ledger's output hashes must not change between versions: a changed canonical form
would make every stored hash stale and re-send every output once after an upgrade."""

from __future__ import annotations

from mapper_exact_mailchimp.ledger import canonical_json, content_hash

# A member-like output with nesting, non-ASCII text, a float, a null and unsorted keys.
OUTPUT = {"status": "subscribed", "email_address": "Zoë@example.com",
          "merge_fields": {"LNAME": "Müller", "FNAME": "A"}, "tags": ["b", "a"],
          "amount": 12.5, "vip": True, "phone": None}


def test_canonical_json_is_sorted_ascii_with_default_separators() -> None:
    assert canonical_json(OUTPUT) == (
        '{"amount": 12.5, "email_address": "Zo\\u00eb@example.com", "merge_fields": '
        '{"FNAME": "A", "LNAME": "M\\u00fcller"}, "phone": null, "status": "subscribed", '
        '"tags": ["b", "a"], "vip": true}')


def test_content_hash_is_stable_across_versions() -> None:
    assert content_hash(OUTPUT) == HASH


# sha256 of the canonical text as the versions before issue 9 made it.
HASH = "c3b448e6474bfaec55777c614037134d30b49db23ec4047d3b611e1b4b03133b"
