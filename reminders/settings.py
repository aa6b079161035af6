"""Settings from the environment (names are part of the contract, SPEC section 5).

Read with pydantic-settings: every problem in the environment is reported at once, naming
each variable, and before anything touches the database. Secrets (the Twilio auth token,
the SMTP password, the secret key) are ``SecretStr`` here and plain text only inside the
channel that uses them; they are never printed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reminders.channels.smtp import SmtpSettings
from reminders.channels.twilio import TwilioSettings
from reminders.compose import DEFAULT_DOMAIN, Links
from reminders.errors import ConfigError
from reminders.ratelimit import TokenBucket

ENVIRONMENT: Final = "environment"
#: Default SMTP port of each security mode.
SMTP_PORTS: Final = {"none": 25, "starttls": 587, "ssl": 465}


def _env(name: str, **kwargs: Any) -> Any:
    return Field(validation_alias=name, **kwargs)


Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(BaseSettings):
    """What the process was told by its environment."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True
    )

    #: Twilio Account SID (``AC...``); with the auth token, SMS go through Twilio.
    twilio_account_sid: str | None = _env("TWILIO_ACCOUNT_SID", default=None)
    #: Twilio auth token (secret).
    twilio_auth_token: SecretStr | None = _env("TWILIO_AUTH_TOKEN", default=None)
    #: Sender number in E.164.
    twilio_from_number: str | None = _env("TWILIO_FROM_NUMBER", default=None)
    #: Messaging Service SID (``MG...``), used instead of a From number.
    twilio_messaging_service_sid: str | None = _env("TWILIO_MESSAGING_SERVICE_SID", default=None)
    #: Twilio-compatible API base URL (default: Twilio's).
    twilio_api_base_url: str | None = _env("TWILIO_API_BASE_URL", default=None)
    #: Seconds to wait for Twilio's answer.
    twilio_timeout: float = _env("TWILIO_TIMEOUT", default=10.0, gt=0)
    #: SMS per second per sender (0: unlimited).
    sms_rate: float = _env("TWILIO_RATE_LIMIT", default=1.0, ge=0)
    #: SMTP server; with it, email goes through SMTP.
    smtp_host: str | None = _env("SMTP_HOST", default=None)
    #: SMTP port (default by security mode: 25, 587, 465).
    smtp_port: Port | None = _env("SMTP_PORT", default=None)
    #: ``none``, ``starttls`` or ``ssl``.
    smtp_security: Literal["none", "starttls", "ssl"] = _env("SMTP_SECURITY", default="starttls")
    #: SMTP login name.
    smtp_username: str | None = _env("SMTP_USERNAME", default=None)
    #: SMTP password (secret).
    smtp_password: SecretStr | None = _env("SMTP_PASSWORD", default=None)
    #: Seconds to wait for the SMTP server.
    smtp_timeout: float = _env("SMTP_TIMEOUT", default=30.0, gt=0)
    #: PEM file of the CAs to trust for the relay's certificate instead of the system's.
    smtp_ca_file: str | None = _env("SMTP_CA_FILE", default=None)
    #: Envelope and header sender of every email.
    email_from: str | None = _env("EMAIL_FROM", default=None)
    #: Emails per second per sender (0: unlimited).
    email_rate: float = _env("SMTP_RATE_LIMIT", default=10.0, ge=0)
    #: Base URL the public HTTP endpoints are reachable at (Twilio signs against it).
    public_url: str | None = _env("REMINDERS_PUBLIC_URL", default=None)
    #: HMAC key for unsubscribe links and other tokens (secret).
    secret_key: SecretStr | None = _env("REMINDERS_SECRET_KEY", default=None)
    #: Address the HTTP server binds to (loopback by default).
    http_host: str = _env("REMINDERS_HTTP_HOST", default="127.0.0.1")
    #: Port of the HTTP server.
    http_port: Port = _env("REMINDERS_HTTP_PORT", default=8080)
    #: Request header carrying the signed-in user's email, set by a trusted auth proxy
    #: (SSO in front of the dashboard); None (the default) turns it off.
    auth_proxy_header: str | None = _env("REMINDERS_AUTH_PROXY_HEADER", default=None)
    #: Peer addresses whose identity header and X-Forwarded-For are believed.
    trusted_proxies: str = _env("REMINDERS_TRUSTED_PROXIES", default="127.0.0.1,::1")
    #: How long a claimed reminder stays leased to one process.
    lease_seconds: float = _env("REMINDERS_LEASE_SECONDS", default=600.0, gt=0)
    #: Concurrent sends per process.
    workers: int = _env("REMINDERS_WORKERS", default=8, ge=1)
    #: Reminders claimed per transaction.
    batch_size: int = _env("REMINDERS_BATCH_SIZE", default=100, ge=1)
    #: The console dry run prints message texts even when stdout is not a terminal.
    console_text: bool = _env("REMINDERS_CONSOLE_TEXT", default=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The process environment only: no ``.env`` files, no secrets directories."""
        return (init_settings, env_settings)

    @field_validator("smtp_security", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") or None if value else None

    @field_validator("auth_proxy_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
            raise ValueError("must be an HTTP header name such as X-Forwarded-Email")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for item in filter(None, (a.strip() for a in value.split(","))):
            ipaddress.ip_address(item)  # ValueError names the bad one
        return value

    def proxies(self) -> frozenset[str]:
        """The trusted proxies' addresses."""
        return frozenset(
            str(ipaddress.ip_address(a.strip()))
            for a in self.trusted_proxies.split(",")
            if a.strip()
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of the process environment (or of ``env``, for tests).

        Raises one :class:`~reminders.errors.ConfigError` naming every wrong variable.
        """
        try:
            if env is None:
                settings = cls()
            else:
                settings = cls.model_validate({k: v for k, v in env.items() if v != ""})
        except ValidationError as exc:
            problems = [_problem(error) for error in exc.errors()]
            raw = os.environ if env is None else env
            problems += _pairs({k: v for k, v in raw.items() if v})
            raise ConfigError(ENVIRONMENT, "; ".join(problems)) from None
        problems = settings._pairs() + settings._ca_file()
        if problems:
            raise ConfigError(ENVIRONMENT, "; ".join(problems))
        return settings

    def _ca_file(self) -> list[str]:
        """The relay's CA file must be readable PEM certificates, checked at start."""
        smtp = self.smtp
        if smtp is None or not smtp.ca_file or smtp.security == "none":
            return []
        try:
            smtp.tls_context()
        except OSError as exc:  # ssl.SSLError (not PEM) is an OSError too
            return [f"SMTP_CA_FILE: cannot read CA certificates from {smtp.ca_file!r}: {exc}"]
        return []

    def _pairs(self) -> list[str]:
        return _pairs(
            {
                name: "set"
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                    ("TWILIO_FROM_NUMBER", self.twilio_from_number),
                    ("TWILIO_MESSAGING_SERVICE_SID", self.twilio_messaging_service_sid),
                    ("SMTP_HOST", self.smtp_host),
                    ("EMAIL_FROM", self.email_from),
                )
                if value
            }
        )

    @property
    def twilio(self) -> TwilioSettings | None:
        """Twilio settings, or None for console SMS."""
        if not (self.twilio_account_sid and self.twilio_auth_token):
            return None
        return TwilioSettings(
            account_sid=self.twilio_account_sid,
            auth_token=self.twilio_auth_token.get_secret_value(),
            from_number=self.twilio_from_number,
            messaging_service_sid=self.twilio_messaging_service_sid,
            api_base_url=self.twilio_api_base_url,
            public_url=self.public_url,
            timeout=self.twilio_timeout,
        )

    @property
    def smtp(self) -> SmtpSettings | None:
        """SMTP settings, or None for console email."""
        if self.smtp_host is None or self.email_from is None:
            return None  # console email; EMAIL_FROM alone is reported by from_env
        return SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port or SMTP_PORTS[self.smtp_security],
            sender=self.email_from,
            security=self.smtp_security,
            username=self.smtp_username,
            password=self.smtp_password.get_secret_value() if self.smtp_password else None,
            timeout=self.smtp_timeout,
            ca_file=self.smtp_ca_file,
        )

    def secret(self) -> str | None:
        """The HMAC key of links and tokens, if set."""
        return self.secret_key.get_secret_value() if self.secret_key else None

    def limits(self) -> dict[str, TokenBucket]:
        """One token bucket per sender (channel)."""
        return {"sms": TokenBucket(self.sms_rate), "email": TokenBucket(self.email_rate)}

    def unsubscribe(self) -> Links | None:
        """One-click unsubscribe links, when a public URL and a secret key are set."""
        secret = self.secret()
        if self.public_url and secret:
            return Links(self.public_url, secret)
        return None

    def message_domain(self) -> str:
        """The domain of Message-IDs: the sender's, so they are unique to this clinic."""
        smtp = self.smtp
        if smtp and "@" in smtp.sender:
            return smtp.sender.rsplit("@", 1)[1].strip(" >")
        return DEFAULT_DOMAIN


def _problem(error: Any) -> str:
    """``NAME: what is wrong, got 'value'`` for one pydantic error (secrets never echoed)."""
    name = str(error["loc"][0]) if error["loc"] else "?"
    value = error.get("input")
    shown = "" if "TOKEN" in name or "PASSWORD" in name or "SECRET" in name else f", got {value!r}"
    return f"{name}: {error['msg']}{shown}"


def _pairs(present: Mapping[str, str]) -> list[str]:
    """Settings that only make sense together."""
    problems = []
    sid, token = "TWILIO_ACCOUNT_SID" in present, "TWILIO_AUTH_TOKEN" in present
    if sid != token:
        missing = "TWILIO_AUTH_TOKEN" if sid else "TWILIO_ACCOUNT_SID"
        problems.append(f"{missing}: is required with the other Twilio credential")
    if (sid or token) and not (
        "TWILIO_FROM_NUMBER" in present or "TWILIO_MESSAGING_SERVICE_SID" in present
    ):
        problems.append(
            "TWILIO_FROM_NUMBER: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"
        )
    if "SMTP_HOST" in present and "EMAIL_FROM" not in present:
        problems.append("EMAIL_FROM: is required with SMTP_HOST")
    return problems
