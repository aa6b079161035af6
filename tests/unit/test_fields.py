"""Field normalisation and masking (reminders.fields)."""

from __future__ import annotations

import string
import sys
import unicodedata

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reminders.fields import (
    attribute_text,
    mask_email,
    mask_phone,
    normalise_email,
    normalise_phone,
    text_problem,
)

# --- text_problem -------------------------------------------------------------------------


def test_every_control_character_and_nothing_else_is_refused() -> None:
    """Across all of Unicode, a text is refused for exactly the characters of category Cc,
    and the message names the character and its position."""
    refused = set()
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        if text_problem(f"ab{char}", 10) is not None:
            refused.add(char)
    assert refused == {
        chr(p) for p in range(sys.maxunicode + 1) if unicodedata.category(chr(p)) == "Cc"
    }
    assert text_problem("Sam\x1b[2J", 100) == "has a control character ('\\x1b') at position 4"


# --- normalise_phone ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "+12015550123",
        " +12015550123 ",
        "(201) 555-0123",
        "201-555-0123",
        "201.555.0123",
        "2015550123",
        "1 201 555 0123",
        "+1 (201) 555-0123",
        2015550123,
    ],
)
def test_us_numbers_become_e164(written: object) -> None:
    """E.164 and US national forms (text or a bare number) all give ``+12015550123``."""
    assert normalise_phone(written, "US") == "+12015550123"


def test_e164_number_ignores_the_region() -> None:
    """A number with a country code keeps its country whatever the clinic's region."""
    assert normalise_phone("+12015550100", "GB") == "+12015550100"


def test_national_number_is_read_in_the_given_region() -> None:
    """National digits are read in the region given: the same digits mean another number in GB."""
    assert normalise_phone("020 7946 0018", "GB") == "+442079460018"
    assert normalise_phone("(201) 555-0123", "GB") == "+442015550123"


@pytest.mark.parametrize(
    ("written", "words"),
    [
        pytest.param("", "is not a phone number", id="empty"),
        pytest.param("call me", "is not a phone number", id="words"),
        pytest.param("555-01", "'555-01'", id="too-short"),
        pytest.param("+1 011 555 0100", "not a valid phone number", id="impossible-area-code"),
        pytest.param("+1 201 555 0123 4567", "not a valid phone number", id="too-long"),
    ],
)
def test_invalid_phone_raises_value_error_quoting_it(written: str, words: str) -> None:
    """Text that is not a valid number raises ValueError quoting what was written."""
    with pytest.raises(ValueError, match=r"phone number") as caught:
        normalise_phone(written, "US")

    assert words in str(caught.value)
    assert repr(written.strip()) in str(caught.value)


# --- normalise_email ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("dana@example.com", "dana@example.com"),
        ("  dana@example.com\t", "dana@example.com"),
        ("dana@EXAMPLE.COM", "dana@example.com"),
        ("Dana.Reyes+rehab@Example.com", "Dana.Reyes+rehab@example.com"),
    ],
)
def test_email_is_trimmed_and_domain_lower_cased(written: str, normalised: str) -> None:
    """Surrounding space goes, the domain is lower-cased, the local part is kept as written."""
    assert normalise_email(written) == normalised


@pytest.mark.parametrize(
    "written",
    ["dana", "dana@", "@example.com", "dana@@example.com", "dana@localhost", "da na@example.com"],
)
def test_invalid_email_raises_value_error_quoting_it(written: str) -> None:
    """An address the validator rejects raises ValueError quoting it and saying why."""
    with pytest.raises(ValueError, match="is not a valid email address: ") as caught:
        normalise_email(written)

    assert repr(written) in str(caught.value)


#: Pieces of addresses: every kind of character a local part may or may not take, and
#: domains the validator takes (in any case, IDN included) and refuses.
_LOCAL_CHARS = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-" + '.@" <>(),;:\\é\x00'
_DOMAINS = [
    "example.com",
    "EXAMPLE.com",
    "mail.example.org",
    "bücher.example",
    "xn--bcher-kva.example",
    "localhost",
    "example",
    "-example.com",
    "example..com",
    "[192.0.2.1]",
    "ex ample.com",
    "a" * 64 + ".example.com",
    ("a" * 60 + ".") * 4 + "com",
    "",
]


def _validator(written: str) -> str:
    """The address as email_validator alone normalises it, or its error text."""
    try:
        return validate_email(written.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        return f"refused: {exc}"


@settings(max_examples=2000, deadline=None)
@given(
    local=st.one_of(
        st.text(alphabet=_LOCAL_CHARS, max_size=70),
        st.from_regex(r"[a-zA-Z0-9.+_-]{55,70}", fullmatch=True),  # near the 64 limit
    ),
    domain=st.one_of(st.sampled_from(_DOMAINS), st.from_regex(r"[a-z0-9.-]{0,80}", fullmatch=True)),
)
@example(local="a" * 64, domain="example.com")
@example(local="a" * 65, domain="example.com")
@example(local="a..b", domain="example.com")
@example(local=".a", domain="example.com")
@example(local="a.", domain="example.com")
def test_email_normalises_exactly_as_the_validator_does(local: str, domain: str) -> None:
    """The per-domain shortcut for plain local parts gives the validator's answer on every address: the same normal form, or a refusal with the validator's reason."""
    written = f"{local}@{domain}"
    try:
        got = normalise_email(written)
    except ValueError as exc:
        got = f"refused: {str(exc).partition('is not a valid email address: ')[2]}"
    assert got == _validator(written)


def test_email_longer_than_the_limit_is_refused_though_local_part_and_domain_are_fine() -> None:
    """A 64-character local part and a valid 200-character domain: each passes alone, the address (265 characters) is too long."""
    domain = ("a" * 60 + ".") * 3 + "example.com"
    with pytest.raises(ValueError, match="too long"):
        normalise_email(f"{'b' * 64}@{domain}")


# --- mask_phone -----------------------------------------------------------------------------


def test_mask_phone_shows_country_area_and_last_two() -> None:
    """An E.164 US number shows only ``+1201`` and its last two digits."""
    assert mask_phone("+12015550123") == "+1201*****23"


@pytest.mark.parametrize("empty", [None, ""])
def test_mask_phone_of_nothing_is_empty(empty: str | None) -> None:
    """No number masks to the empty string."""
    assert mask_phone(empty) == ""


@pytest.mark.parametrize("length", range(1, 17))
def test_mask_phone_never_reveals_more_than_stated(length: int) -> None:
    """At most the first five and last two characters show, and always something is hidden."""
    phone = "+" + "".join(str(d % 10) for d in range(1, length))[: length - 1]
    assert len(phone) == length

    masked = mask_phone(phone)

    assert len(masked) == length
    shown = [i for i, (a, b) in enumerate(zip(phone, masked, strict=True)) if a == b]
    head = 5 if length > 8 else 2
    assert all(i < head or i >= length - 2 for i in shown), (phone, masked)
    assert len(shown) < length, (phone, masked)
    assert set(masked) - set(phone) <= {"*"}


@pytest.mark.parametrize("phone", ["5", "55", "+15", "+155"])
def test_mask_phone_hides_very_short_text_entirely(phone: str) -> None:
    """Text too short to keep both ends and hide anything is all stars."""
    assert mask_phone(phone) == "*" * len(phone)


# --- mask_email -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("dana@example.com", "d***@example.com"),
        ("dana.reyes+rehab@example.com", "d***@example.com"),
        ("d@example.com", "d***@example.com"),
    ],
)
def test_mask_email_shows_first_letter_and_domain(email: str, masked: str) -> None:
    """Only the first character of the local part shows; its length is hidden too."""
    assert mask_email(email) == masked


@pytest.mark.parametrize("email", [None, "", "not-an-address"])
def test_mask_email_of_nothing_or_no_address_is_empty(email: str | None) -> None:
    """No address, or text without ``@``, masks to the empty string (never the text itself)."""
    assert mask_email(email) == ""


def test_mask_email_with_at_sign_in_quoted_local_part() -> None:
    """A quoted local part holding ``@`` does not leak into the shown domain."""
    masked = mask_email('"dana@home"@example.com')

    assert masked == '"***@example.com'
    assert "home" not in masked


# --- attribute_text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        ("true", "true"),
        (2, "2"),
        ("2", "2"),
        ("  chronic ", "chronic"),
        ("NO", "NO"),
    ],
)
def test_attribute_text_makes_yaml_and_csv_values_compare_equal(value: object, text: str) -> None:
    """YAML booleans and numbers read as the text a CSV cell holds, trimmed."""
    assert attribute_text(value) == text
