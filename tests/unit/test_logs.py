"""Log masking: anything that looks like an email address or a phone number leaves masked.

:func:`reminders.logs.mask_text` runs over every value of every log line (the ``redact``
processor); these tests hold it to addresses and numbers as people actually write them,
malformed ones included, since a typo in a patients file is exactly what gets logged.
"""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reminders.logs import mask_text, redact


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("dana@example.com", "d***@example.com"),
        ("dana@@example.com", "d***@example.com"),
        ("o'brien@example.com", "o***@example.com"),
        ("'o'brien@example.com' is not valid", "'o***@example.com' is not valid"),
        ("dana/clinic@example.com", "d***@example.com"),
        ("josé.núñez@example.com", "j***@example.com"),
        ('"dana reyes"@example.com', '"***@example.com'),
        ("to <dana.reyes+rehab@example.com>, cc", "to <d***@example.com>, cc"),
        ("write to dana@example.com.", "write to d***@example.com."),
        ("dana@localhost", "d***@localhost"),
        ("+12015550123", "+1201*****23"),
        ("+12015550123x12", "+1201*****23x**"),
        ("+1 (201) 555-0123 ext. 1234", "+1201*****23 ext. ****"),
        ("call 201-555-0123 #12 now", "call ********23 #** now"),
        ("sms:+12015550123", "sms:+1201*****23"),
        ("x+12015550123", "x+1201*****23"),
        ("+12015550123,+12015550178", "+1201*****23,+1201*****78"),
        ("+12015550123 4567890", "+1201************90"),
    ],
)
def test_addresses_and_numbers_come_out_masked(text: str, masked: str) -> None:
    """Each address or number, however it is written (the table), comes out in its masked form."""
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "reminder 42 sent at 2026-11-20T15:00:00Z",
        "due 2026-11-20 10:00:00+00:00 in America/New_York",
        "P-1001 crutches-toe-touch #2 sms",
        "SM0123456789abcdef0123456789abcdef",
        "took 0.25 s, 3 attempts",
        "no address @ all",
    ],
)
def test_ids_times_and_counts_are_left_alone(text: str) -> None:
    """Patient ids, milestones, message SIDs, ISO times and small numbers are not mistaken for contact details."""
    assert mask_text(text) == text


#: Characters RFC 5322 allows unquoted in a local part, and a few it does not that people type.
LOCAL = st.text(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~.@é", min_size=2)
#: Domains whose labels start with a letter (a label of 7 digits would be masked as a number).
DOMAIN = st.from_regex(
    r"[a-z][a-z0-9-]{0,11}(\.[a-z][a-z0-9-]{0,11}){0,2}\.[a-z]{2,6}", fullmatch=True
)
#: What surrounds an address in a log line: spaces, brackets, quotes, separators.
AROUND = st.sampled_from(["{}", "to {} now", "<{}>", "'{}'", '"{}"', "({})", "a,{};b", "to: {}."])


@given(local=LOCAL, domain=DOMAIN, around=AROUND)
def test_no_part_of_a_local_part_past_its_first_character_survives(
    local: str, domain: str, around: str
) -> None:
    """For any address-like text in any surrounding, what follows the first character of its local part is gone."""
    hidden = local.lstrip("'`")[1:].strip("'`.@")
    assume(len(hidden) >= 3 and hidden not in around and hidden not in f"@{domain}")
    masked = mask_text(around.format(f"{local}@{domain}"))
    assert hidden not in masked
    assert f"@{domain}" in masked


@given(
    plus=st.booleans(),
    digits=st.text("0123456789", min_size=7, max_size=15),
    separators=st.lists(st.sampled_from(["", " ", "-", ".", "(", ")"]), min_size=15, max_size=15),
    extension=st.sampled_from(["", "x12", " x 345", " ext. 6789", "#77", " extension 5"]),
    around=st.sampled_from(["{}", "call {} now", "tel:{}", "({})", "'{}'", "to={}", "{}."]),
)
def test_a_phone_number_keeps_at_most_six_of_its_digits(
    plus: bool, digits: str, separators: list[str], extension: str, around: str
) -> None:
    """Any run of 7 or more digits written as people write phone numbers keeps at most its first four and last two digits, and no extension digit."""
    body = "".join(d + s for d, s in zip(digits[:-1], separators, strict=False)) + digits[-1]
    text = around.format(("+" if plus else "") + body + extension)
    assume(not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", text))
    masked = mask_text(text)
    assert len(re.findall(r"\d", masked)) <= (6 if plus else 2), (text, masked)


def test_redact_masks_values_that_are_not_text() -> None:
    """An exception, a path or bytes in a log line are masked like text, before a renderer turns them into text."""
    event: dict[str, Any] = {
        "event": "send.failed",
        "error": ValueError("'dana@example.com' refused"),
        "file": Path("exports/+12015550123.csv"),
        "raw": b"From=%2B12015550123 dana@example.com",
        "at": datetime(2026, 11, 20, 15, tzinfo=UTC),
        "count": 3,
    }
    line = json.dumps(redact(None, "error", event), default=repr)
    assert "dana@" not in line
    assert "5550123" not in line
    assert "2026-11-20" in line
    assert event["count"] == 3
