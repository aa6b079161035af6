"""A real SMTP server in-process (aiosmtpd) that records mail and injects replies, for tests.

Shipped in the package so tests and benchmarks share it::

    with SmtpRecorder() as smtp:
        smtp.fail_rcpt("bounce@example.com", "550 5.1.1 No such user")
        smtp.fail_data("451 4.3.0 Try again later")
        ...
        smtp.messages  # every accepted email.message.EmailMessage
"""

from __future__ import annotations

import threading
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, recorder: SmtpRecorder) -> None:
        self.recorder = recorder

    async def handle_EHLO(  # aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.recorder.lock:
            self.recorder.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.recorder.lock:
            reply = self.recorder.rcpt_failures.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.recorder.lock:
            reply = self.recorder.data_failures.popleft() if self.recorder.data_failures else None
            if reply is None or reply.startswith("accept-then-"):
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                assert isinstance(parsed, EmailMessage)  # noqa: S101  # policy.default makes EmailMessage
                self.recorder.messages.append(parsed)
                self.recorder.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        if reply == "accept-then-drop":
            server.transport.close()  # accepted, then the connection is lost before the reply
            return "250 OK"
        return reply or "250 OK: queued"


class SmtpRecorder:
    """An aiosmtpd server on a free loopback port, recording what it accepts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        #: Accepted messages, parsed.
        self.messages: list[EmailMessage] = []
        #: (MAIL FROM, RCPT TOs) of each accepted message.
        self.envelopes: list[tuple[str, list[str]]] = []
        #: EHLO count: one per SMTP session (connection reuse shows as a low number).
        self.sessions = 0
        #: Address -> reply for RCPT TO (e.g. ``"550 5.1.1 No such user"``).
        self.rcpt_failures: dict[str, str] = {}
        #: Replies for the next DATA commands, in order; ``accept-then-drop`` records the mail then hangs up.
        self.data_failures: deque[str] = deque()
        if port == 0:
            import socket  # noqa: PLC0415

            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self._controller = Controller(_Handler(self), hostname=host, port=port)
        #: Where to connect.
        self.host = host
        self.port = port

    def fail_rcpt(self, address: str, reply: str) -> None:
        """Answer RCPT TO ``address`` with ``reply`` (e.g. a 550 bounce)."""
        with self.lock:
            self.rcpt_failures[address.lower()] = reply

    def fail_data(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies, one each."""
        with self.lock:
            self.data_failures.extend(replies)

    def start(self) -> SmtpRecorder:
        """Start serving."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._controller.stop()

    def __enter__(self) -> SmtpRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
