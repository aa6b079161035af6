"""A real SMTP server with TLS and login (aiosmtpd, in-process), for tests of SMTP security.

Certificates come from a throwaway CA made by ``trustme`` in the test; the client side
trusts it through ``SMTP_CA_FILE`` / :attr:`reminders.channels.smtp.SmtpSettings.ca_file`,
as a clinic trusts the private CA of its internal relay. The server records, for every
``MAIL FROM`` it accepts, whether the session was encrypted and who had logged in, so a
test can tell a negotiated STARTTLS from a plain-text session.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

Mode = Literal["starttls", "ssl", "plain"]


@dataclass(frozen=True)
class MailFrom:
    """One accepted ``MAIL FROM`` and the state of its session at that moment."""

    #: The envelope sender.
    address: str
    #: TLS version of the session (``TLSv1.3``), or None for plain text.
    tls: str | None
    #: Who had logged in on the session, or None.
    login: str | None


@dataclass(frozen=True)
class Login:
    """One AUTH attempt."""

    #: ``LOGIN`` or ``PLAIN``.
    mechanism: str
    #: The user name given.
    user: str
    #: Whether user name and password matched.
    accepted: bool
    #: TLS version of the session when the credentials were sent, or None.
    tls: str | None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _tls_version(server: Any) -> str | None:
    transport = server.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return None if ssl_object is None else str(ssl_object.version())


class _Handler:
    def __init__(self, server: TlsSmtpServer) -> None:
        self.server = server

    async def handle_MAIL(  # aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        login = session.login_data.decode() if session.login_data else None
        with self.server.lock:
            self.server.mail_from.append(MailFrom(address, _tls_version(server), login))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.server.lock:
            self.server.messages.append(parsed)
        return "250 OK: queued"


class TlsSmtpServer:
    """aiosmtpd on a free loopback port with a certificate issued by ``ca``.

    ``mode``: ``starttls`` offers STARTTLS and refuses every command but EHLO/NOOP/QUIT
    before it (RFC 3207 "must issue a STARTTLS command first"); ``ssl`` speaks TLS from
    the first byte (implicit TLS, port 465 style); ``plain`` offers no TLS at all.
    With ``users``, the server offers a login (and requires it, over STARTTLS) and checks
    passwords against that mapping; ``mechanisms`` limits which AUTH mechanisms it offers.
    """

    def __init__(
        self,
        ca: trustme.CA,
        mode: Mode,
        *,
        users: dict[str, str] | None = None,
        mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN"),
        identity: str = "127.0.0.1",
        host: str = "127.0.0.1",
    ) -> None:
        self.lock = threading.Lock()
        #: Every accepted MAIL FROM with the session's TLS and login state.
        self.mail_from: list[MailFrom] = []
        #: Every accepted message, parsed.
        self.messages: list[EmailMessage] = []
        #: Every AUTH attempt.
        self.logins: list[Login] = []
        self.users = users
        #: Where to connect.
        self.host = host
        self.port = free_port(host)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(identity).configure_cert(context)
        options: dict[str, Any] = {}
        if mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif mode == "ssl":
            options.update(ssl_context=context)
        if users is not None:
            options.update(
                authenticator=self._authenticate,
                # aiosmtpd counts only STARTTLS as TLS and warns when a login is required
                # without it: on an implicit-TLS server a login is offered but not required
                # (tests check ``logins`` and ``MailFrom.login`` to see that one happened).
                auth_required=(mode != "ssl"),
                auth_require_tls=(mode != "ssl"),
                auth_exclude_mechanism=[m for m in ("LOGIN", "PLAIN") if m not in mechanisms],
            )
        self._controller = Controller(_Handler(self), hostname=host, port=self.port, **options)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = self.users is not None and self.users.get(user) == password
        with self.lock:
            self.logins.append(Login(mechanism, user, accepted, _tls_version(server)))
        if accepted:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def start(self) -> TlsSmtpServer:
        """Start serving."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._controller.stop()

    def __enter__(self) -> TlsSmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
