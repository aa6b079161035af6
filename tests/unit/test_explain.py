"""Every error code a channel records has plain words for coordinators (``reminders.explain``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from reminders.channels.smtp import NON_ASCII_ADDRESS, UNENCODABLE, classify_reply
from reminders.channels.twilio import PERMANENT_CODES, classify, classify_transport
from reminders.explain import MEANINGS, cause, meaning
from reminders.lifecycle import SMS_TOO_LONG, UNRECONCILED, Attention

DEADLINE = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)


def _twilio_codes() -> set[str]:
    """Every code the Twilio channel records: its permanent codes, HTTP classes, transport failures."""
    codes = {str(c) for c in PERMANENT_CODES}
    codes |= {classify(s, c, "x").code for s, c in ((429, 20429), (500, 20500), (503, 20503))}
    codes.add(classify(401, 20003, "x").code)
    refused = requests.ConnectionError(ConnectionRefusedError("refused"))
    for exc in (
        requests.ConnectTimeout(),
        requests.ReadTimeout(),
        refused,
        requests.ConnectionError(),
    ):
        codes.add(classify_transport(exc).code)
    return codes | {SMS_TOO_LONG, UNRECONCILED, "list"}


@pytest.mark.parametrize("code", sorted(_twilio_codes()))
def test_every_twilio_code_has_words_of_its_own(code: str) -> None:
    """A code the SMS channel records is explained, not echoed back as the raw error."""
    assert ("sms", code) in MEANINGS


@pytest.mark.parametrize(
    "code",
    ["550", "535", "connection", "smtp-settings", NON_ASCII_ADDRESS, UNENCODABLE, UNRECONCILED],
)
def test_every_named_email_code_has_words_of_its_own(code: str) -> None:
    """The email channel's own codes and the common replies are explained."""
    assert ("email", code) in MEANINGS


def test_smtp_reply_classes_fall_back_to_temporary_and_refused() -> None:
    """Any other 4xx is a temporary problem and any 5xx a refusal, whatever the number."""
    assert "temporary" in cause("email", classify_reply(452, "full").code, "SMTP 452: full")
    assert "refused the message" in cause("email", classify_reply(554, "no").code, "SMTP 554")


def test_an_unknown_code_or_none_keeps_the_stored_error() -> None:
    """Without words for the code, the error as stored is shown (ending in a full stop)."""
    assert cause("sms", None, "no sms address or channel") == "no sms address or channel."
    assert cause("sms", "99999", "Twilio 99999: odd") == "Twilio 99999: odd."


def test_what_comes_next_depends_on_the_state() -> None:
    """The same refused connection reads as retried until the deadline, or as expired and not sent."""
    retrying = meaning(Attention.RETRYING, "sms", "connection-refused", None, DEADLINE)
    expired = meaning(Attention.EXPIRED, "sms", "connection-refused", None, DEADLINE)
    in_doubt = meaning(Attention.IN_DOUBT, "sms", "20500", None, DEADLINE)

    assert retrying.startswith("Twilio could not be reached")
    assert "tries again by itself until 2026-11-03 15:00 UTC" in retrying
    assert "will not be sent" in expired
    assert "tries again" not in expired
    assert "never sent twice" in in_doubt
