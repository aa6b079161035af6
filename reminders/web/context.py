"""What the HTTP handlers need from the running service, and what they hand back to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reminders.compose import Composer
from reminders.metrics import Metrics
from reminders.models import Clinic, Schedules
from reminders.store import Store
from reminders.templates import Templates


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
    #: The last good configuration.
    schedules: Callable[[], Schedules]
    metrics: Metrics
    #: Whether the scheduler (or whatever drives dispatch) is running.
    running: Callable[[], bool]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: The Twilio account (TWILIO_ACCOUNT_SID) every webhook must name as its
    #: ``AccountSid``; None checks only that it has the shape of one.
    twilio_account_sid: str | None = None
    #: The coordinator dashboard; None (no REMINDERS_SECRET_KEY) leaves ``/app/`` unserved.
    dashboard: DashboardSettings | None = None
    #: Asks the dispatcher to run now: a reply or a notice was queued.
    wake: Callable[[], None] = lambda: None
    #: The template set of the last good configuration (the check-in page's question).
    templates: Callable[[], Templates] | None = None

    def clinic(self) -> Clinic:
        """The clinic of the last good configuration."""
        return self.schedules().clinic
