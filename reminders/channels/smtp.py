"""Email over SMTP with smtplib: plain text + HTML, a deterministic Message-ID, RFC 8058 headers.

Replies are classified here: 4xx and dropped connections before the message data is
sent are transient; 5xx is permanent (the address bounced); a connection lost while
the data is being sent leaves the message in doubt. One connection per worker thread
is kept open across a batch and re-opened when the server has dropped it.

Addresses outside ASCII (valid, and written by coordinators: ``josé@example.com``,
``dana@exámple.com``): a domain is sent in its IDNA form (``xn--exmple-qta.com``), which
every server takes; a local part needs the server's SMTPUTF8 (RFC 6531), used when it is
offered, and without it the reminder fails at once with code ``non-ascii-address``. A
message that cannot be encoded at all fails at once with ``unencodable``: nothing here
escapes unclassified, which would leave the reminder in doubt and retried forever.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from dataclasses import dataclass, replace
from email import errors, policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Final, Literal

from email_validator import EmailNotValidError, validate_email

from reminders.channels.base import Message, Receipt
from reminders.errors import DeliveryError, InDoubtError, PermanentError, TransientError

Security = Literal["none", "starttls", "ssl"]
SECURITY_MODES: Final = ("none", "starttls", "ssl")
#: Error code of an address whose local part the server cannot take (no SMTPUTF8).
NON_ASCII_ADDRESS: Final = "non-ascii-address"
#: Error code of a message that cannot be encoded for SMTP.
UNENCODABLE: Final = "unencodable"


def classify_reply(code: int, text: str) -> DeliveryError:
    """An SMTP reply code as the dispatcher's error: 4xx transient, 5xx permanent."""
    if 400 <= code < 500:
        return TransientError(f"SMTP {code}: {text}", code=str(code))
    return PermanentError(f"SMTP {code}: {text}", code=str(code))


def envelope_address(address: str, smtputf8: bool) -> str:
    """``address`` as the SMTP server can take it; raises PermanentError if it cannot.

    A domain outside ASCII becomes its IDNA form; a local part outside ASCII is kept
    only when the server offers SMTPUTF8 (``smtputf8``).
    """
    if address.isascii():
        return address
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise PermanentError(f"not a valid address: {exc}", code=UNENCODABLE) from None
    local = checked.local_part
    if local.isascii():
        return f"{local}@{checked.ascii_domain}"
    if smtputf8:
        return f"{local}@{checked.domain}"
    raise PermanentError(
        "the mail server does not accept addresses with accents or other non-ASCII letters "
        "before the @ (it does not offer SMTPUTF8): ask the patient for another address, or "
        "have the mail server's operator enable SMTPUTF8",
        code=NON_ASCII_ADDRESS,
    )


@dataclass(frozen=True, slots=True)
class _Envelope:
    """One message as it goes to the server: addresses, MAIL options and bytes."""

    #: MAIL FROM.
    sender: str
    #: RCPT TO.
    to: str
    #: MAIL FROM options (SMTPUTF8 when an address needs it).
    options: tuple[str, ...]
    #: The message itself.
    data: bytes
    #: Its Message-ID header: the provider id of an accepted email.
    message_id: str

    @classmethod
    def of(cls, message: Message, sender: str, smtputf8: bool) -> _Envelope:
        """Raises PermanentError for what no server can take or no encoding can carry."""
        name, address = parseaddr(sender)
        from_address = envelope_address(address or sender, smtputf8)
        to = envelope_address(message.to, smtputf8)
        if from_address != address:
            sender = formataddr((name, from_address)) if name else from_address
        utf8 = not (from_address.isascii() and to.isascii())
        try:
            email = build_email(replace(message, to=to), sender)
            data = email.as_bytes(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
        except (ValueError, UnicodeError, errors.MessageError) as exc:
            raise PermanentError(
                f"the email cannot be encoded: {type(exc).__name__}", code=UNENCODABLE
            ) from None
        options = ("SMTPUTF8", "BODY=8BITMIME") if utf8 else ()
        return cls(from_address, to, options, data, str(email["Message-ID"]))


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
        except UnicodeError:
            # Our settings, not the recipient: retry (and alert) until they are fixed.
            raise TransientError(
                "the SMTP host name, user name or password cannot be sent (not ASCII)",
                code="smtp-settings",
            ) from None
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
        conn = self._connection()
        envelope = _Envelope.of(message, self.settings.sender, conn.has_extn("smtputf8"))
        try:
            return self._transact(conn, envelope)
        finally:
            conn.command_encoding = "ascii"  # SMTPUTF8 was for this transaction only

    def _transact(self, conn: smtplib.SMTP, envelope: _Envelope) -> Receipt:
        try:
            code, reply = conn.mail(envelope.sender, envelope.options)
            if code != 250:
                self._reset(conn)
                raise classify_reply(code, _text(reply))
            code, reply = conn.rcpt(envelope.to)
            if code not in (250, 251):
                self._reset(conn)
                raise classify_reply(code, _text(reply))
        except (OSError, smtplib.SMTPException) as exc:
            self._drop(conn)
            raise TransientError(
                f"SMTP connection lost before sending: {type(exc).__name__}", code="connection"
            ) from None
        try:
            code, reply = conn.data(envelope.data)
        except smtplib.SMTPDataError as exc:
            self._reset(conn)
            raise classify_reply(exc.smtp_code, _text(exc.smtp_error)) from None
        except (OSError, smtplib.SMTPException) as exc:
            # The data may have reached the server before the reply was lost.
            self._drop(conn)
            raise InDoubtError(
                f"SMTP connection lost while sending: {type(exc).__name__}", code="connection"
            ) from None
        if code != 250:
            raise classify_reply(code, _text(reply))
        return Receipt(provider_id=envelope.message_id)

    def _reset(self, conn: smtplib.SMTP) -> None:
        """End a refused transaction; a server that hung up meanwhile is dropped, not raised."""
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop(conn)

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
