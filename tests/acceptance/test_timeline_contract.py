"""Acceptance: ``timeline --json`` names each reminder by the id its status callbacks carry.

An operator matching Twilio's callback log (``/twilio/status?reminder=N``) to a patient's
timeline needs the same number on both sides: the test reads it from the callback URL the
real twilio client handed to the Twilio-compatible endpoint.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from reminders.testing.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

from .conftest import Cli, iso
from .test_cli import _day1_of_dana

PUBLIC_URL = "https://reminders.example.com"


def test_timeline_rows_carry_the_reminder_id_that_status_callbacks_name(
    cli: Cli, twilio: FakeTwilio
) -> None:
    """The ``id`` of a sent SMS in ``timeline --json`` is the ``reminder`` of the status callback URL Twilio was given."""
    env = {
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+12015550100",
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_RATE_LIMIT": "0",
        "REMINDERS_PUBLIC_URL": PUBLIC_URL,
    }
    cli("tick", "--now", iso(_day1_of_dana(cli)), "--json", env=env)
    [text] = [m for m in twilio.messages if m.to == "+12015550123"]
    assert text.status_callback is not None
    callback = urlsplit(text.status_callback)
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{PUBLIC_URL}/twilio/status"
    [named] = parse_qs(callback.query, strict_parsing=True)["reminder"]

    rows = cli.timeline("P-1001")

    assert all(isinstance(row["id"], int) for row in rows), rows
    assert len({row["id"] for row in rows}) == len(rows)
    [sent] = [row for row in rows if row["provider_id"] == text.sid]
    assert (sent["id"], sent["channel"], sent["status"]) == (int(named), "sms", "sent")
