"""Settings from the environment (names are part of the contract, SPEC section 5).

Secrets are read here and nowhere else, and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from rich.console import Console

from reminders.channels.base import Channel
from reminders.channels.console import ConsoleChannel
from reminders.channels.smtp import SECURITY_MODES, Security, SmtpChannel, SmtpSettings
from reminders.channels.twilio import TwilioChannel, TwilioSettings
from reminders.dispatch import Dispatcher, Unsubscribe
from reminders.errors import ConfigError
from reminders.models import Schedules
from reminders.ratelimit import TokenBucket
from reminders.store import Store
from reminders.templates import Templates

ENVIRONMENT = "environment"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(ENVIRONMENT, f"expected a number, got {raw!r}", field=name) from None
    if value < 0:
        raise ConfigError(ENVIRONMENT, f"must not be negative, got {raw!r}", field=name)
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, float(default))
    if not (value.is_integer() and 1 <= value <= 65535):
        raise ConfigError(
            ENVIRONMENT, f"expected a port from 1 to 65535, got {env.get(name)!r}", field=name
        )
    return int(value)


@dataclass(frozen=True, slots=True)
class Settings:
    """What the process was told by its environment."""

    #: Twilio settings, or None for console SMS.
    twilio: TwilioSettings | None
    #: SMTP settings, or None for console email.
    smtp: SmtpSettings | None
    #: SMS per second per sender (0: unlimited).
    sms_rate: float
    #: Emails per second per sender (0: unlimited).
    email_rate: float
    #: Base URL the public HTTP endpoints are reachable at.
    public_url: str | None
    #: HMAC key for unsubscribe links and tokens (secret: left out of repr).
    secret_key: str | None = field(repr=False)
    #: Address the HTTP server binds to (loopback by default).
    http_host: str = "127.0.0.1"
    #: Port of the HTTP server.
    http_port: int = 8080
    #: How long a claimed reminder stays leased to one process.
    lease_seconds: float = 600.0
    #: Concurrent sends per process.
    workers: int = 8
    #: Reminders claimed per transaction.
    batch_size: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check the environment; raises ConfigError naming the variable."""
        env = os.environ if env is None else env
        public_url = (env.get("REMINDERS_PUBLIC_URL") or "").rstrip("/") or None
        twilio = None
        sid, token = env.get("TWILIO_ACCOUNT_SID"), env.get("TWILIO_AUTH_TOKEN")
        sender, service = env.get("TWILIO_FROM_NUMBER"), env.get("TWILIO_MESSAGING_SERVICE_SID")
        if sid or token:
            if not (sid and token):
                missing = "TWILIO_AUTH_TOKEN" if sid else "TWILIO_ACCOUNT_SID"
                raise ConfigError(
                    ENVIRONMENT, "is required with the other Twilio credential", field=missing
                )
            if not (sender or service):
                raise ConfigError(
                    ENVIRONMENT,
                    "set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
                    field="TWILIO_FROM_NUMBER",
                )
            twilio = TwilioSettings(
                account_sid=sid,
                auth_token=token,
                from_number=sender or None,
                messaging_service_sid=service or None,
                api_base_url=env.get("TWILIO_API_BASE_URL") or None,
                public_url=public_url,
                timeout=_number(env, "TWILIO_TIMEOUT", 10.0),
            )
        smtp = None
        if env.get("SMTP_HOST"):
            security = (env.get("SMTP_SECURITY") or "starttls").lower()
            if security not in SECURITY_MODES:
                raise ConfigError(
                    ENVIRONMENT,
                    f"expected one of {', '.join(SECURITY_MODES)}, got {security!r}",
                    field="SMTP_SECURITY",
                )
            if not env.get("EMAIL_FROM"):
                raise ConfigError(ENVIRONMENT, "is required with SMTP_HOST", field="EMAIL_FROM")
            default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
            ca_file = env.get("SMTP_CA_FILE") or None
            smtp = SmtpSettings(
                host=env["SMTP_HOST"],
                port=_port(env, "SMTP_PORT", default_port),
                sender=env["EMAIL_FROM"],
                security=cast(Security, security),
                username=env.get("SMTP_USERNAME") or None,
                password=env.get("SMTP_PASSWORD") or None,
                timeout=_number(env, "SMTP_TIMEOUT", 30.0),
                ca_file=ca_file,
            )
            if ca_file:
                try:
                    smtp.tls_context()
                except OSError as exc:  # ssl.SSLError (not PEM) is an OSError too
                    raise ConfigError(
                        ENVIRONMENT,
                        f"cannot read CA certificates from {ca_file!r}: {exc}",
                        field="SMTP_CA_FILE",
                    ) from None
        return cls(
            twilio=twilio,
            smtp=smtp,
            sms_rate=_number(env, "TWILIO_RATE_LIMIT", 1.0),
            email_rate=_number(env, "SMTP_RATE_LIMIT", 10.0),
            public_url=public_url,
            secret_key=env.get("REMINDERS_SECRET_KEY") or None,
            http_host=env.get("REMINDERS_HTTP_HOST") or "127.0.0.1",
            http_port=_port(env, "REMINDERS_HTTP_PORT", 8080),
            lease_seconds=_number(env, "REMINDERS_LEASE_SECONDS", 600.0) or 600.0,
            workers=max(int(_number(env, "REMINDERS_WORKERS", 8)), 1),
            batch_size=max(int(_number(env, "REMINDERS_BATCH_SIZE", 100)), 1),
        )

    def limits(self) -> dict[str, TokenBucket]:
        """One token bucket per sender (channel)."""
        return {"sms": TokenBucket(self.sms_rate), "email": TokenBucket(self.email_rate)}

    def unsubscribe(self) -> Unsubscribe | None:
        """One-click unsubscribe links, when a public URL and a secret key are set."""
        if self.public_url and self.secret_key:
            return Unsubscribe(self.public_url, self.secret_key)
        return None

    def message_domain(self) -> str:
        """The domain of Message-IDs: the sender's, so they are unique to this clinic."""
        if self.smtp and "@" in self.smtp.sender:
            return self.smtp.sender.rsplit("@", 1)[1].strip(" >")
        return "recovery-reminders.invalid"


def build_channels(
    settings: Settings, console: Console | None = None
) -> tuple[dict[str, Channel], list[str]]:
    """The channel for each name, and one line per channel saying where it delivers.

    Without provider settings a channel prints to ``console`` (a dry run).
    """
    channels: dict[str, Channel] = {}
    notes: list[str] = []
    if settings.twilio:
        channels["sms"] = TwilioChannel(settings.twilio)
        target = settings.twilio.api_base_url or "Twilio"
        notes.append(f"sms: Twilio ({target}), {settings.sms_rate or 'unlimited'} msg/s")
    else:
        channels["sms"] = ConsoleChannel("sms", console)
        notes.append(
            "sms: console (dry run); set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER"
        )
    if settings.smtp:
        channels["email"] = SmtpChannel(settings.smtp)
        notes.append(
            f"email: SMTP {settings.smtp.host}:{settings.smtp.port} ({settings.smtp.security}), "
            f"{settings.email_rate or 'unlimited'} msg/s"
        )
    else:
        channels["email"] = ConsoleChannel("email", console)
        notes.append("email: console (dry run); set SMTP_HOST and EMAIL_FROM")
    if settings.public_url and not settings.secret_key:
        notes.append(
            "REMINDERS_SECRET_KEY is not set: emails go out without one-click unsubscribe links"
        )
    return channels, notes


def build_dispatcher(
    store: Store,
    schedules: Schedules,
    templates: Templates,
    settings: Settings,
    *,
    owner: str,
    console: Console | None = None,
) -> tuple[Dispatcher, list[str]]:
    """A dispatcher wired to the channels, rate limits and unsubscribe links of ``settings``."""
    channels, notes = build_channels(settings, console)
    dispatcher = Dispatcher(
        store,
        schedules,
        templates,
        channels,
        owner=owner,
        limits=settings.limits(),
        workers=settings.workers,
        batch_size=settings.batch_size,
        lease=timedelta(seconds=settings.lease_seconds),
        unsubscribe=settings.unsubscribe(),
        message_domain=settings.message_domain(),
    )
    return dispatcher, notes
