"""E-mail addresses as Mailchimp takes them: an internationalised domain in IDNA form, the same
whichever way Exact spells it (so dedup and consent work across spellings)."""

from __future__ import annotations

from mapper_exact_mailchimp.emails import check_email
from mapper_test_kit import account, contact, guid, tap_run


def test_an_internationalised_domain_is_accepted_in_idna_form():
    assert check_email(" Jan@Müller.DE ").email == "jan@xn--mller-kva.de"
    assert check_email("jan@xn--mller-kva.de").email == "jan@xn--mller-kva.de"
    # IDNA 2008, as the target encodes it: straße.de is not strasse.de.
    assert check_email("a@straße.de").email == "a@xn--strae-oqa.de"
    assert check_email("a@ｍüller.de").email == "a@xn--mller-kva.de"
    assert check_email("Jan.Contact1@Example.NL ").email == "jan.contact1@example.nl"
    assert check_email("jan@müller..de").email is None


def test_both_spellings_of_a_domain_are_one_member_and_consent_holds(run_mapper):
    out = run_mapper(tap_run({
        "accounts": [account(1), account(2)],
        "contacts": [
            contact(1, 1, Email="Jan@Müller.de", IsMailingExcluded=True,
                    Modified="2023-01-01T00:00:00Z"),
            contact(2, 2, Email="jan@xn--mller-kva.de", Modified="2025-01-01T00:00:00Z"),
        ],
    }))
    members = out.by_key("members", "email")
    assert set(members) == {"jan@xn--mller-kva.de"}
    member = members["jan@xn--mller-kva.de"]
    assert member["source_key"].endswith(guid(10_002))
    assert member["opt_out"] is True


def test_utf8_before_the_at_is_not_usable_and_the_fallback_is_taken(run_mapper):
    # Mailchimp blocks UTF-8 before the @ (but allows it in the domain).
    assert check_email("jürgen@example.de").email is None
    out = run_mapper(tap_run({
        "accounts": [account(1)],
        "contacts": [contact(1, 1, Email="jürgen@example.de", BusinessEmail="J@Example.de")],
    }))
    assert set(out.by_key("members", "email")) == {"j@example.de"}


def test_the_fast_path_for_plain_addresses_agrees_with_the_validator():
    """Issue 9: plain ASCII addresses skip email-validator only where it would accept them."""
    import random

    from email_validator import EmailNotValidError, validate_email
    from mapper_exact_mailchimp.emails import plainly_valid

    def validator_accepts(address: str) -> bool:
        try:
            validate_email(address, check_deliverability=False, allow_smtputf8=False)
        except EmailNotValidError:
            return False
        return True

    tricky = ["a@b.nl", "a@b.c", "a@b.c1", "a@1.nl", "a@b.local", "a@b.test", "a@localhost",
              "a@b.invalid", "a@x.onion", "a@1.in-addr.arpa", "a@ab--c.nl", "a@xn--mller-kva.de",
              "a@b-.nl", "a@-b.nl", ".a@b.nl", "a.@b.nl", "a..b@b.nl", "a@b..nl", "a@.b.nl",
              "a@b.nl.", "@b.nl", "a@", "a@nl", f"{'a' * 64}@b.nl", f"{'a' * 65}@b.nl",
              f"a@{'b' * 63}.nl", f"a@{'b' * 64}.nl", f"a@{'b.' * 124}nl", f"a@{'b.' * 126}nl",
              "a+b_c-d@e-f.g-h.nl", "a b@c.nl", "a@b c.nl", "a\"b@c.nl", "a@b.n-l", "a@b.museum"]
    rng = random.Random(9)

    def piece(alphabet: str, longest: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))

    generated = [f"{piece('ab1-._+', 6)}@{piece('ab1-.', 8)}"
                 f".{rng.choice(['nl', 'b', '1a', 'a1', 'test', 'x-y', 'local', '', 'com'])}"
                 for _ in range(3000)]
    fast = 0
    for address in tricky + generated:
        if plainly_valid(address):
            fast += 1
            assert validator_accepts(address), address
    assert fast > 100  # the fast path is taken at all
    for address in ("jan.contact1@example.nl", "info@bakkerij-7.nl", "a+b_c-d@e-f.g-h.nl"):
        assert plainly_valid(address)
