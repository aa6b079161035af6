"""What the HTTP handlers need from the running service, and what they hand back to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reminders.compose import Composer
from reminders.metrics import Metrics
from reminders.models import Clinic
from reminders.store import Store


@dataclass(frozen=True, slots=True)
class Inbound:
    """A free-text reply to forward to the clinic's coordinator."""

    #: Row id of the stored reply.
    id: int
    #: The sender's number (E.164).
    sender: str
    #: What the patient wrote.
    body: str
    #: Enrollments with that number.
    patient_ids: list[str]


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard (``/app/``) needs beyond the webhooks; it is off without it."""

    #: HMAC key of session cookies and CSRF tokens (REMINDERS_SECRET_KEY).
    secret: str
    #: The render stage of the configuration in use, with this environment's links:
    #: the patient page shows each message exactly as it was sent.
    composer: Callable[[], Composer]
    #: Cookies carry ``Secure`` (False only for plain http on loopback).
    secure_cookies: bool = True
    #: Header of a trusted auth proxy naming the signed-in user (None: off).
    proxy_header: str | None = None
    #: Peers whose identity header and X-Forwarded-For are believed.
    proxies: frozenset[str] = field(default_factory=lambda: frozenset({"127.0.0.1", "::1"}))


@dataclass
class WebContext:
    """What the HTTP handlers need from the running service."""

    store: Store
    #: Twilio auth token for signature checks (None: every webhook is refused).
    twilio_auth_token: str | None
    #: Base URL Twilio calls, as configured in Twilio (REMINDERS_PUBLIC_URL).
    public_url: str | None
    #: HMAC key of unsubscribe tokens.
    secret_key: str | None
    #: The clinic of the last good configuration.
    clinic: Callable[[], Clinic]
    metrics: Metrics
    #: Whether the scheduler (or whatever drives dispatch) is running.
    running: Callable[[], bool]
    #: Sends a free-text reply on to the coordinator.
    forward: Callable[[Inbound], None]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: The Twilio account (TWILIO_ACCOUNT_SID) every webhook must name as its
    #: ``AccountSid``; None checks only that it has the shape of one.
    twilio_account_sid: str | None = None
    #: The coordinator dashboard; None (no REMINDERS_SECRET_KEY) leaves ``/app/`` unserved.
    dashboard: DashboardSettings | None = None
