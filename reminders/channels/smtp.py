"""Email over SMTP with smtplib: plain text + HTML, a deterministic Message-ID, RFC 8058 headers.

Replies are classified here: 4xx and dropped connections before the message data is
sent are transient; 5xx is permanent (the address bounced); a connection lost while
the data is being sent leaves the message in doubt. One connection per worker thread
is kept open across a batch and re-opened when the server has dropped it.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final, Literal

from reminders.channels.base import Message, Receipt
from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError

Security = Literal["none", "starttls", "ssl"]
SECURITY_MODES: Final = ("none", "starttls", "ssl")


def classify_reply(code: int, text: str) -> DeliveryError:
    """An SMTP reply code as the dispatcher's error: 4xx transient, 5xx permanent."""
    if 400 <= code < 500:
        return TransientError(f"SMTP {code}: {text}", code=str(code))
    return PermanentError(f"SMTP {code}: {text}", code=str(code))


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the mail server."""

    #: Server host.
    host: str
    #: Server port (25, 587 for STARTTLS, 465 for SSL).
    port: int
    #: Envelope and header sender.
    sender: str
    #: ``none``, ``starttls`` or ``ssl``.
    security: Security = "starttls"
    #: Login name, if the server needs one.
    username: str | None = None
    #: Password (secret; never printed).
    password: str | None = None
    #: Seconds to wait for the server.
    timeout: float = 30.0
    #: PEM file of the CAs to trust for the server's certificate instead of the system's
    #: (a relay with a certificate from the clinic's private CA); None: the system's.
    ca_file: str | None = None

    def __repr__(self) -> str:
        return f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r})"

    def tls_context(self) -> ssl.SSLContext:
        """The TLS client context: verifies the certificate and host name against the trusted CAs.

        Raises OSError or ssl.SSLError when ``ca_file`` cannot be read as PEM certificates.
        """
        return ssl.create_default_context(cafile=self.ca_file)


def build_email(message: Message, sender: str) -> EmailMessage:
    """A multipart/alternative email with a deterministic Message-ID and unsubscribe headers."""
    email = EmailMessage(policy=policy.SMTP)
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False, usegmt=True)
    email["Message-ID"] = message.message_id or make_msgid()
    email["Auto-Submitted"] = "auto-generated"
    if message.unsubscribe_url:
        email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # quoted-printable keeps every line under SMTP's 998-octet limit whatever the template does.
    email.set_content(message.text, cte="quoted-printable")
    if message.html:
        email.add_alternative(message.html, subtype="html", cte="quoted-printable")
    return email


class SmtpChannel:
    """Sends email through one SMTP server."""

    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._tls = settings.tls_context() if settings.security != "none" else None
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def _open(self) -> smtplib.SMTP:
        """A connected, secured and logged-in session; closed again if any step fails."""
        s = self.settings
        conn: smtplib.SMTP
        if s.security == "ssl":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                conn.starttls(context=self._tls)
            conn.ehlo_or_helo_if_needed()
            if s.username:
                conn.login(s.username, s.password or "")
        except BaseException:
            conn.close()  # a refused login or handshake must not leak the socket
            raise
        return conn

    def _connect(self) -> smtplib.SMTP:
        try:
            conn = self._open()
        except smtplib.SMTPAuthenticationError as exc:
            # Our credentials, not the recipient: retry (and alert) until they are fixed.
            raise TransientError(
                f"SMTP login refused: {exc.smtp_code}", code=str(exc.smtp_code)
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise classify_reply(exc.smtp_code, _text(exc.smtp_error)) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(
                f"cannot reach SMTP server: {type(exc).__name__}", code="connection"
            ) from None
        with self._lock:
            self._all.append(conn)
        return conn

    def _connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                if conn.noop()[0] == 250:
                    return conn
            except (OSError, smtplib.SMTPException):
                pass
            self._drop(conn)
        conn = self._connect()
        self._local.conn = conn
        return conn

    def _drop(self, conn: smtplib.SMTP) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def send(self, message: Message) -> Receipt:
        """Send one email; raises a classified DeliveryError."""
        email = build_email(message, self.settings.sender)
        conn = self._connection()
        try:
            code, reply = conn.mail(self.settings.sender)
            if code != 250:
                conn.rset()
                raise classify_reply(code, _text(reply))
            code, reply = conn.rcpt(message.to)
            if code not in (250, 251):
                conn.rset()
                raise classify_reply(code, _text(reply))
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop(conn)
            raise TransientError(
                f"SMTP connection lost before sending: {type(exc).__name__}", code="connection"
            ) from None
        try:
            code, reply = conn.data(email.as_bytes())
        except smtplib.SMTPDataError as exc:
            conn.rset()
            raise classify_reply(exc.smtp_code, _text(exc.smtp_error)) from None
        except (OSError, smtplib.SMTPServerDisconnected, TimeoutError) as exc:
            # The data may have reached the server before the reply was lost.
            self._drop(conn)
            raise InDoubtError(
                f"SMTP connection lost while sending: {type(exc).__name__}", code="connection"
            ) from None
        if code != 250:
            raise classify_reply(code, _text(reply))
        return Receipt(provider_id=str(email["Message-ID"]))

    def close(self) -> None:
        """Close every open connection (end of a batch, shutdown)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
        self._local = threading.local()


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
