"""Settings from the environment (names are part of the contract, SPEC section 5).

Secrets are read here and nowhere else, and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from reminders.channels.base import Channel
from reminders.channels.console import ConsoleChannel


@dataclass(frozen=True, slots=True)
class Settings:
    """What the process was told by its environment."""

    #: Folder holding schedules.yaml, templates/ and the patients file.
    config_dir: Path
    #: SQLAlchemy URL, or None for the default SQLite file.
    database_url: str | None
    #: Base URL the public HTTP endpoints are reachable at (status callbacks, unsubscribe).
    public_url: str | None
    #: Twilio is configured (account, token and a sender).
    twilio: bool
    #: SMTP is configured (host and sender).
    smtp: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment."""
        env = os.environ if env is None else env
        return cls(
            config_dir=Path(env.get("REMINDERS_CONFIG_DIR") or "."),
            database_url=env.get("REMINDERS_DATABASE_URL") or None,
            public_url=(env.get("REMINDERS_PUBLIC_URL") or "").rstrip("/") or None,
            twilio=bool(
                env.get("TWILIO_ACCOUNT_SID")
                and env.get("TWILIO_AUTH_TOKEN")
                and (env.get("TWILIO_FROM_NUMBER") or env.get("TWILIO_MESSAGING_SERVICE_SID"))
            ),
            smtp=bool(env.get("SMTP_HOST") and env.get("EMAIL_FROM")),
        )


def build_channels(
    settings: Settings, console: Console | None = None
) -> tuple[dict[str, Channel], list[str]]:
    """The channel for each name, and one line per channel saying where it delivers.

    Without provider settings a channel prints to ``console`` (a dry run).
    """
    channels: dict[str, Channel] = {}
    notes: list[str] = []
    for name, configured, needs in (
        ("sms", settings.twilio, "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER"),
        ("email", settings.smtp, "SMTP_HOST and EMAIL_FROM"),
    ):
        channels[name] = ConsoleChannel(name, console)
        if configured:
            notes.append(
                f"{name}: provider settings found, but provider delivery is not built yet: console"
            )
        else:
            notes.append(f"{name}: console (dry run); set {needs} to deliver for real")
    return channels, notes
