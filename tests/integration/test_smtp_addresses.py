"""Email to addresses outside ASCII, and refusals that end the connection (real aiosmtpd).

Whatever happens in the SMTP channel comes out as a classified DeliveryError: anything
else would leave the reminder ``sending``, in doubt, and retried forever.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from reminders.channels.base import Message
from reminders.channels.memory import MemoryChannel
from reminders.channels.smtp import SmtpChannel, SmtpSettings
from reminders.errors import PermanentError
from reminders.models import Schedules
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from reminders.testing.smtp import SmtpRecorder
from tests.integration.test_dispatch import DAY1, ENROLLED
from tests.integration.test_sync import patient, timeline, write

SENDER = "NJOI <reminders@clinic.example.com>"


@pytest.fixture
def ascii_only() -> Iterator[SmtpRecorder]:
    """A recording SMTP server that does not offer SMTPUTF8."""
    with SmtpRecorder() as server:
        yield server


@pytest.fixture
def smtputf8() -> Iterator[SmtpRecorder]:
    """A recording SMTP server that offers SMTPUTF8."""
    with SmtpRecorder(smtputf8=True) as server:
        yield server


def channel(server: SmtpRecorder) -> SmtpChannel:
    """An SMTP channel to ``server`` without TLS."""
    settings = SmtpSettings(host=server.host, port=server.port, sender=SENDER, security="none")
    return SmtpChannel(settings)


def message(to: str, reminder_id: int = 1, subject: str = "Your recovery") -> Message:
    """A small email to ``to``."""
    return Message(
        reminder_id=reminder_id,
        channel="email",
        to=to,
        text="Keep the brace on.",
        subject=subject,
        html="<p>Keep the brace on.</p>",
        message_id=f"<reminder.{reminder_id}@clinic.example.com>",
    )


def test_international_domain_goes_out_in_idna_form(ascii_only: SmtpRecorder) -> None:
    """``dana@exámple.com`` is delivered as ``dana@xn--exmple-qta.com``, envelope and header."""
    email = channel(ascii_only)

    receipt = email.send(message("dana@exámple.com"))
    email.close()

    assert receipt.provider_id == "<reminder.1@clinic.example.com>"
    assert ascii_only.envelopes == [("reminders@clinic.example.com", ["dana@xn--exmple-qta.com"])]
    assert ascii_only.mail_options == [[]]
    assert ascii_only.messages[0]["To"] == "dana@xn--exmple-qta.com"


def test_non_ascii_local_part_without_smtputf8_fails_permanently(
    ascii_only: SmtpRecorder,
) -> None:
    """``josé@example.com`` to a server without SMTPUTF8 is a permanent failure saying so."""
    email = channel(ascii_only)

    with pytest.raises(PermanentError) as caught:
        email.send(message("josé@example.com"))
    email.send(message("dana@example.com", reminder_id=2))  # the connection still serves
    email.close()

    assert caught.value.code == "non-ascii-address"
    assert "does not offer SMTPUTF8" in str(caught.value)
    assert ascii_only.envelopes == [("reminders@clinic.example.com", ["dana@example.com"])]


def test_non_ascii_local_part_goes_out_with_smtputf8(smtputf8: SmtpRecorder) -> None:
    """A server offering SMTPUTF8 gets ``josé@exámple.com`` as written, in UTF-8."""
    email = channel(smtputf8)

    email.send(message("josé@exámple.com"))
    email.send(message("dana@example.com", reminder_id=2))
    email.close()

    assert smtputf8.envelopes == [
        ("reminders@clinic.example.com", ["josé@exámple.com"]),
        ("reminders@clinic.example.com", ["dana@example.com"]),
    ]
    assert smtputf8.mail_options == [["SMTPUTF8", "BODY=8BITMIME"], []]
    assert smtputf8.messages[0]["To"] == "josé@exámple.com"


def test_refusal_followed_by_a_hang_up_keeps_its_classification(
    ascii_only: SmtpRecorder,
) -> None:
    """A 550 for the recipient, then a closed connection: still a permanent 550."""
    ascii_only.fail_rcpt("gone@example.com", "550 5.1.1 No such user", hang_up=True)
    email = channel(ascii_only)

    with pytest.raises(PermanentError) as caught:
        email.send(message("gone@example.com"))
    email.send(message("dana@example.com", reminder_id=2))  # a new connection is opened
    email.close()

    assert caught.value.code == "550"
    assert [rcpt for _, rcpt in ascii_only.envelopes] == [["dana@example.com"]]


def test_message_that_cannot_be_encoded_fails_permanently(ascii_only: SmtpRecorder) -> None:
    """A subject with a line break (a header injection) fails as ``unencodable``, unsent."""
    email = channel(ascii_only)

    with pytest.raises(PermanentError) as caught:
        email.send(message("dana@example.com", subject="Hi\r\nBcc: all@example.com"))
    email.close()

    assert caught.value.code == "unencodable"
    assert ascii_only.envelopes == []


def test_reminder_to_an_address_the_server_cannot_take_fails_with_a_code(
    store: Store,
    shipped: Schedules,
    templates: Templates,
    tmp_path: Path,
    ascii_only: SmtpRecorder,
) -> None:
    """The reminder for ``josé@example.com`` fails at once with its code; it is not left in doubt."""
    path = write(tmp_path / "p.yaml", patient("P-1", email="josé@example.com"))
    sync_patients(store, shipped, path, ENROLLED)
    dispatcher = make_dispatcher(
        store,
        shipped,
        templates,
        {"sms": MemoryChannel("sms"), "email": channel(ascii_only)},
        owner="test",
        rng=random.Random(5),
    )

    report = dispatcher.tick(DAY1)

    assert (report.counts["failed"], report.counts["in_doubt"], report.counts["error"]) == (
        1,
        0,
        0,
    )
    (failed,) = [e for e in timeline(store, "P-1") if e.channel == "email" and e.attempts]
    assert (failed.status, failed.error_code, failed.attempts) == (
        "failed",
        "non-ascii-address",
        1,
    )
    assert ascii_only.envelopes == []
