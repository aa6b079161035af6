"""Email through a real SMTP server (aiosmtpd, in-process): what the server actually received."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reminders.channels.memory import MemoryChannel
from reminders.channels.smtp import SmtpChannel, SmtpSettings
from reminders.compose import Links
from reminders.dispatch import Dispatcher
from reminders.models import Schedules
from reminders.store import Store
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from reminders.testing.smtp import SmtpRecorder
from reminders.tokens import verify
from tests.integration.test_dispatch import DAY1, enrol
from tests.integration.test_sync import timeline

SECRET = "test-secret-key"


@pytest.fixture
def smtp() -> Iterator[SmtpRecorder]:
    """A recording SMTP server on a free loopback port."""
    with SmtpRecorder() as server:
        yield server


def email_dispatcher(
    store: Store, schedules: Schedules, templates: Templates, smtp: SmtpRecorder
) -> Dispatcher:
    channel = SmtpChannel(
        SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            sender="NJOI <reminders@clinic.example.com>",
            security="none",
        )
    )
    return make_dispatcher(
        store,
        schedules,
        templates,
        {"sms": MemoryChannel("sms"), "email": channel},
        owner="test",
        rng=random.Random(3),
        unsubscribe=Links("https://reminders.example.com", SECRET),
        message_domain="clinic.example.com",
    )


def test_email_arrives_as_multipart_with_deterministic_id_and_unsubscribe_headers(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path, smtp: SmtpRecorder
) -> None:
    """The server receives text + HTML, a Message-ID derived from the reminder, and RFC 8058 headers."""
    enrol(store, shipped, tmp_path, "P-1")
    assert email_dispatcher(store, shipped, templates, smtp).tick(DAY1).counts["sent"] == 2
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    entry = next(
        e
        for e in timeline(store, "P-1")
        if e.channel == "email" and e.milestone == "crutches-toe-touch"
    )
    assert mail["Message-ID"] == f"<reminder.{entry.id}.crutches-toe-touch.1@clinic.example.com>"
    assert entry.provider_id == mail["Message-ID"]
    assert mail["To"] == "p-1@example.com"
    assert smtp.envelopes[0] == ("reminders@clinic.example.com", ["p-1@example.com"])
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Dana" in text.get_content()
    assert "Dana" in html.get_content()
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = mail["List-Unsubscribe"].strip().strip("<>")
    assert url.startswith("https://reminders.example.com/unsubscribe/")
    token = url.rsplit("/", 1)[1]
    assert verify(SECRET, token) == entry.id
    assert "p-1" not in token  # opaque: the link does not reveal the address
    assert url in html.get_content()


def test_one_connection_serves_a_batch(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path, smtp: SmtpRecorder
) -> None:
    """Several emails in one tick share SMTP sessions instead of one connection each."""
    enrol(store, shipped, tmp_path, *(f"P-{i}" for i in range(1, 21)))
    d = email_dispatcher(store, shipped, templates, smtp)
    assert d.tick(DAY1).counts["sent"] == 40
    assert len(smtp.messages) == 20
    assert smtp.sessions <= d.workers


def test_451_is_retried_and_delivered_once(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path, smtp: SmtpRecorder
) -> None:
    """A 451 on DATA plans a retry; the retry delivers exactly one copy."""
    enrol(store, shipped, tmp_path, "P-1")
    smtp.fail_data("451 4.3.0 Try again later")
    d = email_dispatcher(store, shipped, templates, smtp)
    assert d.tick(DAY1).counts["retry"] == 1
    entry = next(
        e
        for e in timeline(store, "P-1")
        if e.channel == "email" and e.milestone == "crutches-toe-touch"
    )
    assert (entry.status, entry.error_code) == ("planned", "451")
    assert smtp.messages == []
    assert d.tick(entry.not_before).counts["sent"] == 1
    assert len(smtp.messages) == 1


def test_550_fails_at_once_with_the_code(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path, smtp: SmtpRecorder
) -> None:
    """A 550 on RCPT TO fails the reminder with code 550, is not retried, and is listed for coordinators."""
    enrol(store, shipped, tmp_path, "P-1")
    smtp.fail_rcpt("p-1@example.com", "550 5.1.1 No such user")
    d = email_dispatcher(store, shipped, templates, smtp)
    assert d.tick(DAY1).counts["failed"] == 1
    assert d.tick(DAY1 + timedelta(hours=2)).counts["failed"] == 0
    assert smtp.messages == []
    with store.read() as tx:
        failure = tx.views.summary().failures[0]
    assert (failure.patient_id, failure.channel, failure.error_code) == ("P-1", "email", "550")


def test_connection_lost_after_data_resends_with_the_same_message_id(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path, smtp: SmtpRecorder
) -> None:
    """Mail accepted but unacknowledged is in doubt; the resend carries the same Message-ID."""
    enrol(store, shipped, tmp_path, "P-1")
    smtp.fail_data("accept-then-drop")
    d = email_dispatcher(store, shipped, templates, smtp)
    assert d.tick(DAY1).counts["in_doubt"] == 1
    entry = next(
        e
        for e in timeline(store, "P-1")
        if e.channel == "email" and e.milestone == "crutches-toe-touch"
    )
    assert d.tick(entry.not_before).counts["sent"] == 1
    assert len(smtp.messages) == 2
    assert smtp.messages[0]["Message-ID"] == smtp.messages[1]["Message-ID"]


def test_unreachable_server_is_transient(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """No SMTP server listening: the email is retried later, not failed."""
    enrol(store, shipped, tmp_path, "P-1")
    from reminders.testing.peer import closed_port

    with closed_port() as port:
        channel = SmtpChannel(
            SmtpSettings(
                host="127.0.0.1", port=port, sender="r@clinic.example.com", security="none"
            )
        )
        d = make_dispatcher(
            store, shipped, templates, {"sms": MemoryChannel("sms"), "email": channel}, owner="t"
        )
        assert d.tick(DAY1).counts["retry"] == 1
