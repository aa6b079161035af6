"""The channel interface and the values that cross it.

A channel is a small object with :meth:`Channel.send` (one message -> one receipt, or a
classified :class:`~reminders.errors.DeliveryError`) and :meth:`Channel.close` (end of a
batch). A channel that can tell whether an in-doubt attempt reached its provider also
has :meth:`Reconciling.reconcile` (Twilio can; SMTP cannot).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from reminders.lifecycle import ReminderStatus


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered message to one recipient."""

    #: The outbox row this message delivers.
    reminder_id: int
    #: ``sms`` or ``email``.
    channel: str
    #: E.164 phone number or email address.
    to: str
    #: SMS body or plain-text email body.
    text: str
    #: Email subject ("" for SMS).
    subject: str = ""
    #: Email HTML ("" for SMS).
    html: str = ""
    #: Deterministic id (email Message-ID) so a resend can be recognised.
    message_id: str = ""
    #: The provider must not deliver after this instant (UTC).
    expires_at: datetime | None = None
    #: Patient id, for the console's dry-run display only; never sent to a provider.
    patient_id: str = ""
    #: Local send time text for the console's display ("Mon 2026-11-23 10:00 EST").
    local_time: str = ""
    #: One-click unsubscribe URL for email headers, when a public URL is configured.
    unsubscribe_url: str | None = None
    #: Seconds the provider may still try to deliver (Twilio ValidityPeriod), by the dispatcher's clock.
    validity_seconds: int | None = None


def body_digest(text: str) -> str:
    """A short digest of a message text; attempts store it so reconciliation can match it."""
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider said when it accepted a message."""

    #: Provider's id (Twilio SID, SMTP Message-ID).
    provider_id: str
    #: ``sent`` (accepted by the provider) or ``delivered`` (known delivered).
    status: ReminderStatus = ReminderStatus.SENT


class Channel(Protocol):
    """Sends a message or raises a :class:`~reminders.errors.DeliveryError` subclass."""

    #: ``sms`` or ``email``.
    name: str

    def send(self, message: Message) -> Receipt:
        """Deliver ``message``; return the provider's receipt."""
        ...

    def close(self) -> None:
        """Release what a batch held (connections); the channel may be used again after."""
        ...


@runtime_checkable
class Reconciling(Protocol):
    """A channel that can tell whether an earlier, in-doubt attempt reached the provider."""

    def reconcile(
        self, message: Message, since: datetime, digests: frozenset[str]
    ) -> Receipt | None:
        """The receipt of a message sent since ``since`` whose text has one of ``digests``
        (the texts of the in-doubt attempts) or is ``message.text``, if any."""
        ...
