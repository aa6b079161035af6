"""Each channel sorts its provider's failures into transient, permanent and in doubt."""

from __future__ import annotations

import pytest
import requests
import urllib3

from reminders.channels.smtp import classify_reply
from reminders.channels.twilio import classify, classify_transport
from reminders.errors import InDoubtError, PermanentError, TransientError
from reminders.testing.peer import closed_port


@pytest.mark.parametrize(
    ("status", "code", "kind", "opted_out"),
    [
        (400, 21211, PermanentError, False),  # invalid 'To' number
        (400, 21614, PermanentError, False),  # not a mobile number
        (400, 21610, PermanentError, True),  # unsubscribed: also opts the number out
        (400, 21408, PermanentError, False),
        (401, 20003, TransientError, False),  # our credentials are wrong: retry until ops fix them
        (429, 20429, TransientError, False),
        (500, None, InDoubtError, False),  # may have been accepted: reconcile first
        (502, None, InDoubtError, False),
        (503, None, InDoubtError, False),
    ],
)
def test_twilio_rest_errors_are_classified(
    status: int, code: int | None, kind: type[Exception], opted_out: bool
) -> None:
    """Twilio's status and code map to the dispatcher's error kind, keeping the code."""
    error = classify(status, code, "message")
    assert type(error) is kind
    assert error.code == str(code if code is not None else status)
    assert getattr(error, "opted_out", False) is opted_out


def test_twilio_rate_limit_keeps_retry_after() -> None:
    """A 429's Retry-After reaches the dispatcher as seconds to wait."""
    error = classify(429, 20429, "Too Many Requests", retry_after=7.0)
    assert isinstance(error, TransientError)
    assert error.retry_after == 7.0


def test_twilio_permanent_message_names_the_code_meaning() -> None:
    """Coordinators see what a code means, not just its number."""
    assert "invalid" in str(classify(400, 21211, "The 'To' number is not valid"))
    assert "unsubscribed" in str(classify(400, 21610, "Attempt to send to unsubscribed recipient"))


def test_connection_refused_is_transient() -> None:
    """A refused connection (a real one, to a closed loopback port) never reached Twilio: safe to retry."""
    with closed_port() as port, pytest.raises(requests.ConnectionError) as caught:
        requests.post(f"http://127.0.0.1:{port}/", timeout=2)
    assert isinstance(classify_transport(caught.value), TransientError)


def test_connect_timeout_is_transient_and_read_timeout_in_doubt() -> None:
    """No connection means not sent; a request sent without an answer may have been accepted."""
    assert isinstance(classify_transport(requests.ConnectTimeout()), TransientError)
    assert isinstance(classify_transport(requests.ReadTimeout()), InDoubtError)


def test_connection_dropped_mid_request_is_in_doubt() -> None:
    """A connection reset after the request went out leaves the send in doubt."""
    reset = requests.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    )
    assert isinstance(classify_transport(reset), InDoubtError)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (421, TransientError),  # service closing
        (450, TransientError),  # mailbox busy
        (451, TransientError),  # local error, try later
        (452, TransientError),  # insufficient storage
        (550, PermanentError),  # mailbox unavailable: bounced
        (551, PermanentError),
        (552, PermanentError),
        (553, PermanentError),
        (554, PermanentError),
    ],
)
def test_smtp_reply_classes(code: int, kind: type[Exception]) -> None:
    """SMTP 4xx replies are transient and 5xx permanent, keeping the reply code."""
    error = classify_reply(code, "reply")
    assert type(error) is kind
    assert error.code == str(code)
