"""Settings from the environment: every default, and an error naming the variable for each bad value.

Written against ``Settings.from_env(mapping)`` and the public fields only, so they hold
whatever parses the environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reminders.app import App
from reminders.channels.console import ConsoleChannel
from reminders.errors import ConfigError
from reminders.settings import Settings

TWILIO = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "test-auth-token",
    "TWILIO_FROM_NUMBER": "+12015550100",
}
SMTP = {"SMTP_HOST": "mail.example.com", "EMAIL_FROM": "reminders@example.com"}


def test_empty_environment_gives_every_documented_default() -> None:
    """With nothing set: 1 SMS/s, 10 emails/s, 127.0.0.1:8080, 600 s leases, 8 workers, batches of 100.

    Catches: a default changed (e.g. binding 0.0.0.0, or no SMS rate limit) without changing the contract.
    """
    s = Settings.from_env({})
    assert (s.sms_rate, s.email_rate) == (1.0, 10.0)
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert s.lease_seconds == 600.0
    assert (s.workers, s.batch_size) == (8, 100)
    assert (s.public_url, s.secret_key) == (None, None)


def test_without_provider_settings_both_channels_print_to_the_console() -> None:
    """No Twilio and no SMTP settings: SMS and email are console dry runs, and the notes say so.

    Catches: an unconfigured channel that tries a real provider (or none at all) instead of the console.
    """
    s = Settings.from_env({})
    assert (s.twilio, s.smtp) == (None, None)
    channels, notes = App(Path(), settings=s).channels()
    assert isinstance(channels["sms"], ConsoleChannel)
    assert isinstance(channels["email"], ConsoleChannel)
    assert any(n.startswith("sms: console") for n in notes)
    assert any(n.startswith("email: console") for n in notes)


def test_empty_values_count_as_unset() -> None:
    """Variables set to "" (an env file's ``NAME=``) take their defaults.

    Catches: an empty value read as 0 (no rate limit) or as an address to bind.
    """
    names = (
        "TWILIO_RATE_LIMIT",
        "SMTP_RATE_LIMIT",
        "REMINDERS_HTTP_HOST",
        "REMINDERS_HTTP_PORT",
        "REMINDERS_LEASE_SECONDS",
        "REMINDERS_WORKERS",
        "REMINDERS_BATCH_SIZE",
    )
    assert Settings.from_env(dict.fromkeys(names, "")) == Settings.from_env({})


@pytest.mark.parametrize(("security", "port"), [("none", 25), ("starttls", 587), ("ssl", 465)])
def test_smtp_port_defaults_to_the_port_of_its_security_mode(security: str, port: int) -> None:
    """Without SMTP_PORT the port follows SMTP_SECURITY: 25 for none, 587 for starttls, 465 for ssl.

    Catches: one default port for every mode (implicit TLS on 587 never connects).
    """
    s = Settings.from_env({**SMTP, "SMTP_SECURITY": security})
    assert s.smtp is not None
    assert (s.smtp.security, s.smtp.port) == (security, port)


def test_smtp_security_defaults_to_starttls_on_587() -> None:
    """SMTP_HOST without SMTP_SECURITY means STARTTLS on port 587, never plain text.

    Catches: plain text as the default security.
    """
    s = Settings.from_env(SMTP)
    assert s.smtp is not None
    assert (s.smtp.security, s.smtp.port) == ("starttls", 587)
    assert (s.smtp.host, s.smtp.sender) == ("mail.example.com", "reminders@example.com")
    assert (s.smtp.username, s.smtp.password, s.smtp.ca_file) == (None, None, None)


def test_explicit_values_override_the_defaults() -> None:
    """Every setting given in the environment is the one used (SMTP_SECURITY in any case).

    Catches: a variable ignored or read under another name, so its default silently wins.
    """
    s = Settings.from_env(
        {
            **TWILIO,
            **SMTP,
            "SMTP_SECURITY": "SSL",
            "SMTP_PORT": "2465",
            "SMTP_USERNAME": "relay-user",
            "SMTP_PASSWORD": "relay-password",
            "TWILIO_RATE_LIMIT": "0",
            "SMTP_RATE_LIMIT": "2.5",
            "REMINDERS_HTTP_HOST": "0.0.0.0",
            "REMINDERS_HTTP_PORT": "9090",
            "REMINDERS_LEASE_SECONDS": "30",
            "REMINDERS_WORKERS": "3",
            "REMINDERS_BATCH_SIZE": "50",
            "REMINDERS_PUBLIC_URL": "https://reminders.example.com/",
            "REMINDERS_SECRET_KEY": "a-secret-key",
        }
    )
    assert s.twilio is not None
    assert s.smtp is not None
    assert (s.twilio.account_sid, s.twilio.from_number) == (
        TWILIO["TWILIO_ACCOUNT_SID"],
        "+12015550100",
    )
    assert (s.smtp.security, s.smtp.port) == ("ssl", 2465)
    assert (s.smtp.username, s.smtp.password) == ("relay-user", "relay-password")
    assert (s.sms_rate, s.email_rate) == (0.0, 2.5)
    assert (s.http_host, s.http_port) == ("0.0.0.0", 9090)
    assert (s.lease_seconds, s.workers, s.batch_size) == (30.0, 3, 50)
    assert s.public_url == "https://reminders.example.com"
    assert s.secret() == "a-secret-key"


NUMBERS = (
    "TWILIO_RATE_LIMIT",
    "SMTP_RATE_LIMIT",
    "REMINDERS_HTTP_PORT",
    "REMINDERS_LEASE_SECONDS",
    "REMINDERS_WORKERS",
    "REMINDERS_BATCH_SIZE",
    "SMTP_PORT",
    "SMTP_TIMEOUT",
    "TWILIO_TIMEOUT",
)


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("value", ["fast", "-1"])
def test_a_bad_number_is_an_error_naming_its_variable(name: str, value: str) -> None:
    """A numeric setting that is not a number, or is negative, is refused with the variable's name.

    Catches: a bad value silently replaced by a default (or crashing later with a traceback).
    """
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**TWILIO, **SMTP, name: value})


@pytest.mark.parametrize("name", ["REMINDERS_HTTP_PORT", "SMTP_PORT"])
@pytest.mark.parametrize("value", ["0", "65536", "8080.5"])
def test_a_port_outside_1_to_65535_or_not_whole_is_an_error_naming_its_variable(
    name: str, value: str
) -> None:
    """A port must be a whole number from 1 to 65535; anything else is refused with the variable's name.

    Catches: a port silently truncated (8080.5 -> 8080) or accepted out of range (fails only at bind or connect).
    """
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({**SMTP, name: value})


def test_unknown_smtp_security_is_an_error_listing_the_modes() -> None:
    """SMTP_SECURITY other than none, starttls or ssl is refused with the variable and the choices.

    Catches: an unknown mode (e.g. "tls") silently treated as plain text.
    """
    with pytest.raises(ConfigError, match="SMTP_SECURITY") as caught:
        Settings.from_env({**SMTP, "SMTP_SECURITY": "tls"})
    assert all(mode in str(caught.value) for mode in ("none", "starttls", "ssl"))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TWILIO_ACCOUNT_SID": TWILIO["TWILIO_ACCOUNT_SID"]}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_AUTH_TOKEN": "test-auth-token"}, "TWILIO_ACCOUNT_SID"),
        (
            {k: v for k, v in TWILIO.items() if k != "TWILIO_FROM_NUMBER"},
            "TWILIO_FROM_NUMBER",
        ),
        ({"SMTP_HOST": "mail.example.com"}, "EMAIL_FROM"),
    ],
    ids=["sid-without-token", "token-without-sid", "no-sender", "smtp-without-from"],
)
def test_an_incomplete_provider_setting_is_an_error_naming_what_is_missing(
    env: dict[str, str], named: str
) -> None:
    """Half a provider configuration is refused, naming the variable still needed.

    Catches: a half-configured provider silently falling back to the console (nothing sent, no error).
    """
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_messaging_service_sid_replaces_the_from_number() -> None:
    """TWILIO_MESSAGING_SERVICE_SID is enough as the sender, without TWILIO_FROM_NUMBER.

    Catches: a Messaging Service refused, or sent with both a From number and the service.
    """
    env = {k: v for k, v in TWILIO.items() if k != "TWILIO_FROM_NUMBER"}
    s = Settings.from_env({**env, "TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32})
    assert s.twilio is not None
    assert (s.twilio.from_number, s.twilio.messaging_service_sid) == (None, "MG" + "1" * 32)
