"""Addresses and text as Mailchimp accepts them (issue 7, item 5): IDNA domains, no control
characters, merge-field limits enforced before sending (fixed where possible, else audited)."""

from __future__ import annotations

import requests
from target_mailchimp.client import subscriber_hash
from target_mailchimp.testing import audit_rows, by_email, run_target, state, stream
from target_mailchimp.values import clean_text, normalise_email

PUNY = "user@xn--mller-kva.de"


def test_an_internationalised_domain_is_sent_as_idna_with_one_hash(mailchimp_sandbox, config):
    run_target(config, stream("members", [{"email": " User@Müller.DE ",
                                           "merge_fields": {"FNAME": "Eins"}}]))
    assert set(by_email(mailchimp_sandbox)) == {PUNY}
    assert audit_rows(config, outcome="failed") == []

    # Later runs, whichever way the address is spelt, reach the same member.
    run_target(config, [
        *stream("members", [{"email": "user@xn--mller-kva.de",
                             "merge_fields": {"FNAME": "Zwei"}}]),
        *stream("member_tags", [{"email": "USER@müller.de", "tag_key": "T", "tag_name": "B2B"}]),
        *stream("customers", [{"id": "C1", "email": "User@MÜLLER.de"}]),
    ])
    members = by_email(mailchimp_sandbox)
    assert set(members) == {PUNY}
    assert members[PUNY]["merge_fields"]["FNAME"] == "Zwei"
    assert members[PUNY]["tags"] == ["B2B"]
    customer = mailchimp_sandbox.store("exact-store")["customers"]["C1"]
    assert customer["email_address"] == PUNY
    assert audit_rows(config, outcome="failed") == []


def test_email_normalisation_is_idna2008_and_stable():
    assert normalise_email("a@straße.de") == "a@xn--strae-oqa.de"  # not IDNA 2003's strasse.de
    assert normalise_email("a@ｍüller.de") == "a@xn--mller-kva.de"  # UTS 46 mapping
    assert normalise_email(PUNY) == PUNY
    assert subscriber_hash(normalise_email("USER@MÜLLER.DE")) == subscriber_hash(PUNY)
    assert normalise_email("a@müller..de") is None
    assert normalise_email("ok@example.com") == "ok@example.com"


def test_plain_ascii_addresses_take_the_short_path_to_the_same_answer():
    """Issue 9: an ASCII address skips NFC and IDNA (they change nothing); same results."""
    assert normalise_email(" Ok.Name+tag@Example.COM\n") == "ok.name+tag@example.com"
    assert normalise_email("\u212aelvin@example.nl") == "kelvin@example.nl"  # K sign lowers to k
    for bad in ("", "a@b", "a b@c.de", "a@b@c.de", "a;b@c.de", "@c.de", "a@.", 42, None):
        assert normalise_email(bad) is None, bad
    assert normalise_email("jürgen@Example.DE") is None  # UTF-8 before the @: the long path


def test_control_characters_are_stripped_from_every_text_sent(mailchimp_sandbox, config):
    run_target(config, [
        *stream("members", [{"email": "ctl@example.com", "merge_fields": {
            "FNAME": "An\x00na\x07", "LNAME": "van\tDijk\r\n",
            "ADDRESS": {"addr1": "Dam\x00rak 1", "city": "Amster\x1bdam", "state": "NH",
                        "zip": "1012\x00LG"}}}]),
        *stream("member_tags", [{"email": "ctl@example.com", "tag_key": "V",
                                 "tag_name": "VIP\x00\x1f"}]),
        *stream("tags", [{"tag_key": "W", "name": "Whole\x08sale"}]),
        *stream("products", [{"id": "P1", "title": "Wid\x00get", "sku": "S\x01KU",
                              "vendor": "Acme\x7f", "price": 2.0,
                              "description": "line 1\nline\x00 2"}]),
        *stream("customers", [{"id": "C1", "email": "ctl@example.com", "first_name": "Jo\x00",
                               "company": "Acme\x0bBV",
                               "address": {"address1": "Main\x00 1", "city": "Delft"}}]),
        state({"done": 1}),
    ])
    member = by_email(mailchimp_sandbox)["ctl@example.com"]
    fields = member["merge_fields"]
    assert fields["FNAME"] == "Anna" and fields["LNAME"] == "van Dijk"
    assert fields["ADDRESS"]["addr1"] == "Damrak 1" and fields["ADDRESS"]["zip"] == "1012LG"
    assert fields["ADDRESS"]["city"] == "Amsterdam"
    assert sorted(member["tags"]) == ["VIP"]
    lst = mailchimp_sandbox.context.state.lists[mailchimp_sandbox.list_id]
    assert sorted(s.name for s in lst.segments.values()) == ["VIP", "Wholesale"]
    store = mailchimp_sandbox.store("exact-store")
    product = store["products"]["P1"]
    assert product["title"] == "Widget" and product["vendor"] == "Acme"
    assert product["description"] == "line 1\nline 2"  # line breaks are text there
    assert product["variants"][0]["title"] == "Widget"
    assert product["variants"][0]["sku"] == "SKU"
    customer = store["customers"]["C1"]
    assert customer["first_name"] == "Jo" and customer["company"] == "Acme BV"
    assert customer["address"]["address1"] == "Main 1"
    assert audit_rows(config, outcome="failed") == []


def test_clean_text_keeps_ordinary_text():
    assert clean_text("Zoë ✓ 日本 🙂\u00ad") == "Zoë ✓ 日本 🙂\u00ad"
    assert clean_text("a\x00b\x85c\ud800d") == "abcd"
    assert clean_text("a\nb\tc") == "a b c"
    assert clean_text("a\nb\tc", keep_breaks=True) == "a\nb\tc"


def test_merge_field_limits_are_enforced_before_sending(mailchimp_sandbox, config):
    config["merge_field_map"] = {"score": {"tag": "SCORE", "type": "number"}}
    long_name = "N" * 300
    run_target(config, [
        *stream("members", [
            {"email": "long@example.com", "merge_fields": {"FNAME": "\x00" + long_name}},
            {"email": "nan@example.com", "merge_fields": {"SCORE": "many", "FNAME": "Nan"}},
            {"email": "num@example.com", "merge_fields": {"SCORE": " 42.5 "}},
            {"email": "addr@example.com", "merge_fields": {
                "ADDRESS": {"addr1": "A" * 300, "city": "Delft", "state": "ZH", "zip": "1"}}},
        ]),
        state({"done": 1}),
    ])
    members = by_email(mailchimp_sandbox)
    assert members["long@example.com"]["merge_fields"]["FNAME"] == "N" * 255
    # A value that cannot be fixed is left out; the member is written and the audit says why.
    assert members["nan@example.com"]["merge_fields"]["FNAME"] == "Nan"
    assert members["nan@example.com"]["merge_fields"].get("SCORE") in ("", None)
    assert str(members["num@example.com"]["merge_fields"]["SCORE"]) == "42.5"
    assert members["addr@example.com"]["merge_fields"]["ADDRESS"]["addr1"] == "A" * 255
    assert audit_rows(config, outcome="failed") == []
    reasons = {r["record_key"]: r["reason"] or "" for r in audit_rows(config, stream="members")}
    assert "FNAME cut to 255 characters" in reasons["long@example.com"]
    assert "SCORE left out" in reasons["nan@example.com"]
    assert "number" in reasons["nan@example.com"]


def test_utf8_before_the_at_is_refused_locally_with_the_reason(mailchimp_sandbox, config):
    # Mailchimp cannot take it (its help: "we block direcciónelectrónica@domain.com").
    states = run_target(config, [*stream("members", [{"email": "jürgen@example.de"},
                                                     {"email": "ok@müller.de"}]),
                                 state({"done": 1})])
    assert states == [{"done": 1}]
    assert set(by_email(mailchimp_sandbox)) == {"ok@xn--mller-kva.de"}
    [failed] = audit_rows(config, outcome="failed")
    assert failed["record_key"] == "jürgen@example.de"
    assert "before the @" in failed["reason"]
    assert normalise_email("jürgen@example.de") is None


def test_a_contact_archived_under_its_utf8_domain_is_not_re_added(mailchimp_sandbox, config):
    # Added in Mailchimp (UI, a form) with the domain as typed, then archived there.
    unicode_form = "user@müller.de"
    url = (f"{mailchimp_sandbox.api_base}/lists/{mailchimp_sandbox.list_id}/members/"
           f"{subscriber_hash(unicode_form)}")
    auth = ("any", mailchimp_sandbox.api_key)
    assert requests.put(url, auth=auth, timeout=5, json={
        "email_address": unicode_form, "status_if_new": "unsubscribed"}).status_code == 200
    assert requests.delete(url, auth=auth, timeout=5).status_code == 204

    run_target(config, stream("members", [{"email": "User@Müller.de"}]))
    assert [m["status"] for m in mailchimp_sandbox.members()] == ["archived"]
    [skipped] = audit_rows(config, outcome="skipped")
    assert "archived" in skipped["reason"]


def test_date_and_birthday_values_are_fitted_or_left_out(mailchimp_sandbox, config):
    config["merge_field_map"] = {"since": {"tag": "SINCE", "type": "date"},
                                 "bday": {"tag": "BDAY", "type": "birthday"}}
    run_target(config, [
        *stream("members", [
            {"email": "d1@example.com", "merge_fields": {"SINCE": "2024-05-01T08:00:00Z",
                                                          "BDAY": "1980-07-04"}},
            {"email": "d2@example.com", "merge_fields": {"SINCE": "2024-05-01",
                                                          "BDAY": "07/04"}},
            {"email": "d3@example.com", "merge_fields": {"SINCE": "yesterday", "BDAY": "July",
                                                          "FNAME": "Kept"}},
        ]),
        state({"done": 1}),
    ])
    members = by_email(mailchimp_sandbox)
    for email in ("d1@example.com", "d2@example.com"):
        assert members[email]["merge_fields"]["SINCE"] == "2024-05-01"
        assert members[email]["merge_fields"]["BDAY"] == "07/04"
    assert members["d3@example.com"]["merge_fields"]["FNAME"] == "Kept"
    assert audit_rows(config, outcome="failed") == []
    [row] = audit_rows(config, record_key="d3@example.com")
    assert "SINCE left out" in row["reason"] and "BDAY left out" in row["reason"]
