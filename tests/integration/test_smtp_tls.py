"""Email over TLS and with a login, against a real SMTP server (aiosmtpd) with real certificates.

The certificates come from throwaway CAs made here (``trustme``); the channel trusts the
test CA the way a clinic trusts its relay's private CA: through ``SMTP_CA_FILE``.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from reminders.app import App
from reminders.channels.base import Message
from reminders.channels.smtp import Security, SmtpChannel, SmtpSettings
from reminders.errors import TransientError
from reminders.settings import Settings
from reminders.testing.smtp import Mode, TlsSmtpServer

SENDER = "reminders@clinic.example.com"
USER = "reminders@clinic.example.com"
PASSWORD = "correct-horse-smtp-pw-5f1c"
MAIL = Message(
    reminder_id=7,
    channel="email",
    to="dana@example.com",
    text="Use your crutches.",
    subject="After your surgery",
    html="<p>Use your crutches.</p>",
    message_id="<reminder.7.crutches-toe-touch.1@clinic.example.com>",
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The CA the channel is told to trust."""
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The trusted CA's certificate as a PEM file (what SMTP_CA_FILE points at)."""
    path = tmp_path_factory.mktemp("ca") / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server(ca: trustme.CA, mode: Mode, **options: object) -> TlsSmtpServer:
    return TlsSmtpServer(ca, mode, **options)  # type: ignore[arg-type]


def channel(
    srv: TlsSmtpServer,
    security: Security,
    ca_file: str | None,
    *,
    username: str | None = None,
    password: str | None = None,
) -> SmtpChannel:
    return SmtpChannel(
        SmtpSettings(
            host=srv.host,
            port=srv.port,
            sender=SENDER,
            security=security,
            username=username,
            password=password,
            timeout=10,
            ca_file=ca_file,
        )
    )


def send(ch: SmtpChannel) -> None:
    try:
        ch.send(MAIL)
    finally:
        ch.close()


@pytest.fixture
def starttls_server(ca: trustme.CA) -> Iterator[TlsSmtpServer]:
    """A server that refuses MAIL FROM until STARTTLS has been negotiated."""
    with server(ca, "starttls") as srv:
        yield srv


def test_starttls_is_negotiated_before_mail_from(
    starttls_server: TlsSmtpServer, ca_file: str
) -> None:
    """In ``starttls`` mode the session is encrypted before MAIL FROM, and the mail arrives.

    Catches: STARTTLS never negotiated (the server, which refuses plain-text MAIL FROM, answers 530).
    """
    send(channel(starttls_server, "starttls", ca_file))
    assert [m.address for m in starttls_server.mail_from] == [SENDER]
    assert starttls_server.mail_from[0].tls in ("TLSv1.2", "TLSv1.3")
    assert [m["Message-ID"] for m in starttls_server.messages] == [MAIL.message_id]


def test_starttls_mode_never_falls_back_to_plain_text(ca: trustme.CA, ca_file: str) -> None:
    """A server that does not offer STARTTLS gets nothing: the send fails as transient.

    Catches: a silent downgrade to plain text when the server does not advertise STARTTLS.
    """
    with server(ca, "plain") as srv:
        with pytest.raises(TransientError):
            send(channel(srv, "starttls", ca_file))
        assert srv.mail_from == []
        assert srv.messages == []


def test_ssl_mode_speaks_tls_from_the_first_byte(ca: trustme.CA, ca_file: str) -> None:
    """In ``ssl`` mode the channel connects with implicit TLS to the server's own port.

    Catches: ``ssl`` mode opening a plain-text connection (the handshake never happens).
    """
    with server(ca, "ssl") as srv:
        send(channel(srv, "ssl", ca_file))
        assert [(m.address, m.tls is not None) for m in srv.mail_from] == [(SENDER, True)]
        assert len(srv.messages) == 1


@pytest.mark.parametrize(
    ("mode", "security"), [("starttls", "starttls"), ("ssl", "ssl")], ids=["starttls", "ssl"]
)
@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_login_with_username_and_password_is_accepted(
    ca: trustme.CA, ca_file: str, mode: Mode, security: Security, mechanism: str
) -> None:
    """With SMTP_USERNAME and SMTP_PASSWORD the channel logs in (AUTH LOGIN or PLAIN) over TLS and sends.

    Catches: the login skipped or sent with the wrong credentials (the server requires a login).
    """
    with server(ca, mode, users={USER: PASSWORD}, mechanisms=(mechanism,)) as srv:
        send(channel(srv, security, ca_file, username=USER, password=PASSWORD))
        assert [(x.mechanism, x.user, x.accepted) for x in srv.logins] == [(mechanism, USER, True)]
        assert srv.logins[0].tls is not None
        assert [(m.login, m.tls is not None) for m in srv.mail_from] == [(USER, True)]
        assert len(srv.messages) == 1


def test_wrong_password_is_a_transient_error_with_code_535(ca: trustme.CA, ca_file: str) -> None:
    """A refused login raises a transient error with code 535 (ours to fix, so retried), and sends nothing.

    Catches: bad credentials classified as permanent (535 is 5xx), failing the patient's reminder for good.
    """
    with server(ca, "starttls", users={USER: PASSWORD}) as srv:
        with pytest.raises(TransientError) as caught:
            send(channel(srv, "starttls", ca_file, username=USER, password="wrong-password-77"))
        assert caught.value.code == "535"
        assert "wrong-password-77" not in str(caught.value)
        assert {(x.user, x.accepted) for x in srv.logins} == {(USER, False)}
        assert srv.mail_from == []
        assert srv.messages == []


def test_a_refused_login_closes_its_connection(ca: trustme.CA, ca_file: str) -> None:
    """Each refused login closes the socket it opened: a service retrying with a bad password leaks nothing.

    Catches: the connection of a session whose STARTTLS or login failed left open (one socket per retry).
    """
    with server(ca, "starttls", users={USER: PASSWORD}) as srv:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(3):
                with pytest.raises(TransientError):
                    send(channel(srv, "starttls", ca_file, username=USER, password="wrong-pw"))
            gc.collect()
        assert len(srv.logins) >= 3
    assert [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.parametrize(("mode", "security"), [("starttls", "starttls"), ("ssl", "ssl")])
@pytest.mark.parametrize("trusted", ["another CA file", "the system's CAs"])
def test_certificate_from_an_untrusted_ca_is_refused(
    ca_file: str, mode: Mode, security: Security, trusted: str
) -> None:
    """A server certificate that no trusted CA signed ends the session before MAIL FROM: no email is sent.

    Catches: certificate verification turned off (an impostor relay would receive patients' email).
    """
    impostor = trustme.CA()
    with server(impostor, mode) as srv:
        trust = ca_file if trusted == "another CA file" else None
        with pytest.raises(TransientError):
            send(channel(srv, security, trust))
        assert srv.mail_from == []
        assert srv.messages == []


@pytest.mark.parametrize(("mode", "security"), [("starttls", "starttls"), ("ssl", "ssl")])
def test_certificate_for_another_host_name_is_refused(
    ca: trustme.CA, ca_file: str, mode: Mode, security: Security
) -> None:
    """A certificate from the trusted CA but for another host than SMTP_HOST is refused; no email is sent.

    Catches: host name checking turned off (any certificate of the CA would do).
    """
    with server(ca, mode, identity="other-relay.example.com") as srv:
        with pytest.raises(TransientError):
            send(channel(srv, security, ca_file))
        assert srv.mail_from == []
        assert srv.messages == []


def test_smtp_ca_file_from_the_environment_is_trusted(
    starttls_server: TlsSmtpServer, ca_file: str
) -> None:
    """SMTP_CA_FILE in the environment makes the email channel trust that CA, end to end.

    Catches: SMTP_CA_FILE read but not used by the channel (the system store refuses the test CA).
    """
    settings = Settings.from_env(
        {
            "SMTP_HOST": starttls_server.host,
            "SMTP_PORT": str(starttls_server.port),
            "EMAIL_FROM": SENDER,
            "SMTP_CA_FILE": ca_file,
        }
    )
    assert settings.smtp is not None
    assert settings.smtp.security == "starttls"
    channels, _ = App(Path(), settings=settings).channels()
    email = channels["email"]
    assert isinstance(email, SmtpChannel)
    send(email)
    assert [(m.address, m.tls is not None) for m in starttls_server.mail_from] == [(SENDER, True)]


def test_unreadable_smtp_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    """An SMTP_CA_FILE that is missing or not PEM is refused at start, naming the variable."""
    from reminders.errors import ConfigError

    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for path in (tmp_path / "missing.pem", not_pem):
        env = {"SMTP_HOST": "mail.example.com", "EMAIL_FROM": SENDER, "SMTP_CA_FILE": str(path)}
        with pytest.raises(ConfigError, match="SMTP_CA_FILE"):
            Settings.from_env(env)
