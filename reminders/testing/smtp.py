"""Real SMTP servers in-process (aiosmtpd) that record what they received, for tests.

:class:`SmtpRecorder` is a plain server that records mail and injects replies::

    with SmtpRecorder() as smtp:
        smtp.fail_rcpt("bounce@example.com", "550 5.1.1 No such user")
        smtp.fail_rcpt("gone@example.com", "550 5.1.1 No such user", hang_up=True)
        smtp.fail_data("451 4.3.0 Try again later")
        ...
        smtp.messages  # every accepted email.message.EmailMessage

``SmtpRecorder(smtputf8=True)`` offers SMTPUTF8 (RFC 6531), for addresses like
``josé@example.com``; without it the server offers only ASCII addresses, as many do.

:class:`TlsSmtpServer` speaks STARTTLS or implicit TLS with a certificate from a test CA
(``trustme``'s, or anything with the same ``issue_cert(...).configure_cert(...)``), can
require a login, and records for every ``MAIL FROM`` whether the session was encrypted
and who had logged in, so a test can tell a negotiated STARTTLS from plain text.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Final, Literal, Protocol, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reminders.testing.peer import Peer

Mode = Literal["starttls", "ssl", "plain"]
#: Seconds a server may take to come up (aiosmtpd's own default is 1 s).
READY_TIMEOUT: Final = 30.0


def parse(content: bytes) -> EmailMessage:
    """A received message, parsed."""
    parsed = message_from_bytes(content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)  # noqa: S101  # policy.default makes EmailMessage
    return parsed


class _SocketController(Controller):
    """aiosmtpd's controller serving on a socket bound beforehand: no other process can take the port."""

    def __init__(self, handler: object, sock: socket.socket, **options: Any) -> None:
        host, port = sock.getsockname()[:2]
        # aiosmtpd's default of 1 s to come up is too short on a loaded test machine.
        options.setdefault("ready_timeout", READY_TIMEOUT)
        super().__init__(handler, hostname=host, port=port, **options)
        self._sock = sock

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:  # aiosmtpd's extension point
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class _Server(Peer):
    """An aiosmtpd controller on a free loopback port."""

    def __init__(self, host: str, port: int) -> None:
        self.lock = threading.Lock()
        #: Every accepted message, parsed.
        self.messages: list[EmailMessage] = []
        #: Where to connect.
        self.host = host
        # Bound now (port 0: a free one), so the port is this server's from here on.
        self._sock: socket.socket | None = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._handler: object = None
        self._options: dict[str, Any] = {}
        self._controller: Controller | None = None
        self._running = False

    def _serve(self, handler: object, **options: Any) -> None:
        self._handler, self._options = handler, options

    @property
    def running(self) -> bool:
        """Whether it serves now."""
        return self._running

    def start(self) -> Self:
        """Start serving (again on the same port after a stop)."""
        sock = self._sock or _bind(self.host, self.port)
        self._sock = None  # the server closes it when it stops
        self._controller = _SocketController(self._handler, sock, **self._options)
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._controller is not None and self._running:
            self._controller.stop()
        self._running = False
        if self._sock is not None:  # never started
            self._sock.close()
            self._sock = None


def _bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (0: a free port)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


# -- the recorder -------------------------------------------------------------------------------


class _RecordingHandler:
    def __init__(self, recorder: SmtpRecorder) -> None:
        self.recorder = recorder

    async def handle_EHLO(  # aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.recorder.lock:
            self.recorder.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.recorder.lock:
            reply = self.recorder.rcpt_failures.get(address.lower())
            hang_up = address.lower() in self.recorder.hang_ups
        if reply:
            if hang_up:  # the refusal, then the connection is gone
                await server.push(reply)
                server.transport.close()
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recorder = self.recorder
        with recorder.lock:
            reply = recorder.data_failures.popleft() if recorder.data_failures else None
            if reply is None or reply.startswith("accept-then-"):
                recorder.messages.append(parse(envelope.content))
                recorder.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                recorder.mail_options.append(list(envelope.mail_options))
        if reply == "accept-then-drop":
            server.transport.close()  # accepted, then the connection is lost before the reply
            return "250 OK"
        return reply or "250 OK: queued"


class SmtpRecorder(_Server):
    """An aiosmtpd server on a free loopback port, recording what it accepts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, smtputf8: bool = False) -> None:
        super().__init__(host, port)
        #: (MAIL FROM, RCPT TOs) of each accepted message.
        self.envelopes: list[tuple[str, list[str]]] = []
        #: MAIL FROM options (``SMTPUTF8``, ``BODY=8BITMIME``) of each accepted message.
        self.mail_options: list[list[str]] = []
        #: Addresses whose refusal is followed by closing the connection.
        self.hang_ups: set[str] = set()
        #: EHLO count: one per SMTP session (connection reuse shows as a low number).
        self.sessions = 0
        #: Address -> reply for RCPT TO (e.g. ``"550 5.1.1 No such user"``).
        self.rcpt_failures: dict[str, str] = {}
        #: Replies for the next DATA commands, in order; ``accept-then-drop`` records the mail then hangs up.
        self.data_failures: deque[str] = deque()
        self._serve(_RecordingHandler(self), enable_SMTPUTF8=smtputf8)

    def fail_rcpt(self, address: str, reply: str, *, hang_up: bool = False) -> None:
        """Answer RCPT TO ``address`` with ``reply`` (e.g. a 550 bounce), then hang up if asked."""
        with self.lock:
            self.rcpt_failures[address.lower()] = reply
            if hang_up:
                self.hang_ups.add(address.lower())

    def fail_data(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies, one each."""
        with self.lock:
            self.data_failures.extend(replies)


# -- TLS and login ------------------------------------------------------------------------------


class CertificateAuthority(Protocol):
    """A test CA (``trustme.CA``): it issues server certificates."""

    def issue_cert(self, *identities: str) -> Any:
        """A leaf certificate whose ``configure_cert(context)`` installs it in a context."""
        ...


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


def _tls_version(server: Any) -> str | None:
    transport = server.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return None if ssl_object is None else str(ssl_object.version())


class _TlsHandler:
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
        with self.server.lock:
            self.server.messages.append(parse(envelope.content))
        return "250 OK: queued"


class TlsSmtpServer(_Server):
    """aiosmtpd on a free loopback port with a certificate issued by ``ca``.

    ``mode``: ``starttls`` offers STARTTLS and refuses every command but EHLO/NOOP/QUIT
    before it (RFC 3207 "must issue a STARTTLS command first"); ``ssl`` speaks TLS from
    the first byte (implicit TLS, port 465 style); ``plain`` offers no TLS at all.
    With ``users``, the server offers a login (and requires it, over STARTTLS) and checks
    passwords against that mapping; ``mechanisms`` limits which AUTH mechanisms it offers.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        mode: Mode,
        *,
        users: dict[str, str] | None = None,
        mechanisms: tuple[str, ...] = ("LOGIN", "PLAIN"),
        identity: str = "127.0.0.1",
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host, 0)
        #: Every accepted MAIL FROM with the session's TLS and login state.
        self.mail_from: list[MailFrom] = []
        #: Every AUTH attempt.
        self.logins: list[Login] = []
        self.users = users
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
        self._serve(_TlsHandler(self), **options)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)  # noqa: S101  # login and plain both give one
        user, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = self.users is not None and self.users.get(user) == password
        with self.lock:
            self.logins.append(Login(mechanism, user, accepted, _tls_version(server)))
        if accepted:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)
