"""Secrets (Twilio auth token, SMTP password, secret key, database password) never show in a repr or an error.

Errors here are the ones a person reads: the exception text, and the ``error`` a
reminder keeps for coordinators (``timeline``, ``status``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from reminders.channels.base import Message
from reminders.channels.smtp import SmtpChannel, SmtpSettings
from reminders.channels.twilio import TwilioChannel, TwilioSettings
from reminders.errors import DeliveryError, StoreError
from reminders.settings import Settings
from reminders.store import Store
from reminders.testing.peer import closed_port
from reminders.testing.smtp import TlsSmtpServer
from reminders.testing.twilio import DEFAULT_ACCOUNT_SID, FakeTwilio

TWILIO_TOKEN = "twilio-token-9c1e7b22d4"
SMTP_PASSWORD = "smtp-pw-41f0aa93e6"
SECRET_KEY = "secret-key-7d3b51c08f"
DB_PASSWORD = "db-pw-e85c20a7b1"
SECRETS = (TWILIO_TOKEN, SMTP_PASSWORD, SECRET_KEY, DB_PASSWORD)
USER = "reminders@clinic.example.com"
SMS = Message(reminder_id=3, channel="sms", to="+12015550123", text="Use your crutches.")
MAIL = Message(
    reminder_id=4,
    channel="email",
    to="dana@example.com",
    text="Use your crutches.",
    subject="After your surgery",
    message_id="<reminder.4.crutches-toe-touch.1@clinic.example.com>",
)


def leaks(text: str) -> list[str]:
    """The secrets (or their base64, as in an AUTH exchange) that appear in ``text``."""
    forms = {s: [s, base64.b64encode(s.encode()).decode()] for s in SECRETS}
    plain = base64.b64encode(f"\0{USER}\0{SMTP_PASSWORD}".encode()).decode()
    forms[SMTP_PASSWORD].append(plain)
    return [secret for secret, written in forms.items() if any(w in text for w in written)]


def env(**extra: str) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+12015550100",
        "SMTP_HOST": "mail.example.com",
        "SMTP_USERNAME": USER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "EMAIL_FROM": USER,
        "REMINDERS_PUBLIC_URL": "https://reminders.example.com",
        "REMINDERS_SECRET_KEY": SECRET_KEY,
        **extra,
    }


def test_settings_reprs_hold_no_secret() -> None:
    """``repr`` and ``str`` of the settings and of each provider's settings show no secret.

    Catches: the dataclass repr printing REMINDERS_SECRET_KEY (or a password) wherever settings are logged.
    """
    settings = Settings.from_env(env())
    assert settings.twilio is not None
    assert settings.smtp is not None
    for shown in (settings, settings.twilio, settings.smtp):
        assert leaks(repr(shown)) == []
        assert leaks(str(shown)) == []
    assert settings.secret() == SECRET_KEY  # it is there, only never shown


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The CA of the test SMTP server."""
    return trustme.CA()


@pytest.fixture
def relay(ca: trustme.CA) -> Iterator[TlsSmtpServer]:
    """A STARTTLS relay whose one account has another password than ours."""
    with TlsSmtpServer(ca, "starttls", users={USER: "the-real-password"}) as server:
        yield server


def test_refused_smtp_login_error_holds_no_password(
    relay: TlsSmtpServer, ca: trustme.CA, tmp_path: Path
) -> None:
    """The error of a refused SMTP login names the code, not the password.

    Catches: the credentials written into the error that coordinators and logs see.
    """
    ca_file = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    channel = SmtpChannel(
        SmtpSettings(
            host=relay.host,
            port=relay.port,
            sender=USER,
            username=USER,
            password=SMTP_PASSWORD,
            ca_file=ca_file,
        )
    )
    with pytest.raises(DeliveryError) as caught:
        channel.send(MAIL)
    channel.close()
    assert caught.value.code == "535"
    assert leaks(f"{caught.value} {caught.value!r} {caught.value.args}") == []


def test_refused_twilio_credentials_error_holds_no_token() -> None:
    """The error of a Twilio 401 names the status, not the auth token.

    Catches: the auth token (or the Basic credentials) written into the error.
    """
    with FakeTwilio(auth_token="the-real-token") as fake:
        channel = TwilioChannel(
            TwilioSettings(
                account_sid=DEFAULT_ACCOUNT_SID,
                auth_token=TWILIO_TOKEN,
                from_number="+12015550100",
                api_base_url=fake.url,
            )
        )
        with pytest.raises(DeliveryError) as caught:
            channel.send(SMS)
    assert "401" in str(caught.value)
    assert leaks(f"{caught.value} {caught.value!r} {caught.value.args}") == []


def test_database_password_is_hidden_in_url_and_errors() -> None:
    """``Store.safe_url`` and the error of an unreachable PostgreSQL hide the password.

    Catches: the database URL printed with its password (in the start-up log or an error).
    """
    with closed_port() as port:
        url = f"postgresql+psycopg://reminders:{DB_PASSWORD}@127.0.0.1:{port}/reminders"
        with pytest.raises(StoreError) as caught:
            Store(url)
        assert "127.0.0.1" in str(caught.value)
        assert leaks(str(caught.value)) == []
        store = Store(url, migrate=False)
        try:
            assert store.safe_url.startswith("postgresql+psycopg://reminders:***@127.0.0.1:")
            with pytest.raises(StoreError) as unreachable:
                store.ping()
            assert leaks(str(unreachable.value)) == []
        finally:
            store.close()
    with pytest.raises(StoreError) as unknown:
        Store(f"postgresql+nosuchdriver://reminders:{DB_PASSWORD}@127.0.0.1/reminders")
    assert leaks(str(unknown.value)) == []
