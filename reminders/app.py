"""The composition root: settings, the store, the checked configuration, channels, owner.

The CLI and the service build one :class:`App` and take everything from it; nothing else
reads the environment, opens the database or wires channels. The order is deliberate:
settings are read (every problem at once) before the configuration is checked, and both
before the database is touched.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from reminders.compose import Composer
from reminders.config import load_schedules
from reminders.models import Schedules
from reminders.patients import patients_path
from reminders.store import OutboxManager, Store, default_database_url
from reminders.templates import TEMPLATES_DIR, Templates

if TYPE_CHECKING:  # the channels (twilio, requests), settings and dispatcher load on use:
    # a command that sends nothing (status, timeline, inbound) does not import them.
    from reminders.channels.base import Channel
    from reminders.dispatch import Dispatcher, Observer
    from reminders.settings import Settings


@dataclass(frozen=True, slots=True)
class Config:
    """One checked configuration: ``schedules.yaml`` and every template, valid together."""

    #: The validated schedules.
    schedules: Schedules
    #: The template set.
    templates: Templates
    #: The render stage built on both.
    composer: Composer


class App:
    """Everything a command or the service needs, built once, in a safe order."""

    def __init__(
        self,
        config_dir: Path,
        *,
        database: str | None = None,
        patients: Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        #: Folder with schedules.yaml, templates/ and (by default) patients.yaml.
        self.config_dir = config_dir
        #: SQLAlchemy URL of the store.
        self.database_url = database or default_database_url(config_dir)
        #: The patients file.
        self.patients = patients_path(config_dir, patients)
        #: Lease owner name: unique per process.
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._settings = settings

    @cached_property
    def settings(self) -> Settings:
        """The environment's settings; raises ConfigError naming every wrong variable."""
        from reminders.settings import Settings  # noqa: PLC0415  # see TYPE_CHECKING above

        return self._settings or Settings.from_env()

    @cached_property
    def store(self) -> Store:
        """The database, migrated to this version's schema."""
        return Store(self.database_url)

    def database_exists(self) -> bool:
        """Whether the store already exists (a SQLite file; any other database is assumed to)."""
        url = self.database_url
        if not url.startswith("sqlite:///"):
            return True
        path = url.removeprefix("sqlite:///")
        return path in ("", ":memory:") or Path(path).exists()

    @cached_property
    def config(self) -> Config:
        """The configuration as first loaded; raises ConfigError (a bad one changes nothing)."""
        return self.load_config()

    def load_config(self) -> Config:
        """Read and check schedules.yaml and every template afresh; raises ConfigError."""
        schedules = load_schedules(self.config_dir)
        templates = Templates(self.config_dir / TEMPLATES_DIR)
        composer = Composer(schedules, templates)
        errors, _ = composer.check()
        if errors:
            raise errors[0]
        return Config(schedules, templates, composer)

    def sending(self, config: Config) -> Composer:
        """``config``'s render stage with this environment's unsubscribe links and Message-IDs."""
        settings = self.settings
        return Composer(
            config.schedules,
            config.templates,
            unsubscribe=settings.unsubscribe(),
            message_domain=settings.message_domain(),
        )

    def channels(self, console: Console | None = None) -> tuple[dict[str, Channel], list[str]]:
        """The channel for each name, and one line per channel saying where it delivers.

        Without provider settings a channel prints to ``console`` (a dry run).
        """
        from reminders.channels.console import ConsoleChannel  # noqa: PLC0415  # on use
        from reminders.channels.smtp import SmtpChannel  # noqa: PLC0415  # on use
        from reminders.channels.twilio import TwilioChannel  # noqa: PLC0415  # on use

        settings = self.settings
        channels: dict[str, Channel] = {}
        notes: list[str] = []
        twilio, smtp = settings.twilio, settings.smtp
        if twilio:
            channels["sms"] = TwilioChannel(twilio)
            target = twilio.api_base_url or "Twilio"
            notes.append(f"sms: Twilio ({target}), {settings.sms_rate or 'unlimited'} msg/s")
        else:
            channels["sms"] = ConsoleChannel("sms", console, text=settings.console_text)
            notes.append(
                "sms: console (dry run); set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, "
                "TWILIO_FROM_NUMBER"
            )
        if smtp:
            channels["email"] = SmtpChannel(smtp)
            notes.append(
                f"email: SMTP {smtp.host}:{smtp.port} ({smtp.security}), "
                f"{settings.email_rate or 'unlimited'} msg/s"
            )
        else:
            channels["email"] = ConsoleChannel("email", console, text=settings.console_text)
            notes.append("email: console (dry run); set SMTP_HOST and EMAIL_FROM")
        if settings.public_url and not settings.secret_key:
            notes.append(
                "REMINDERS_SECRET_KEY is not set: emails go out without one-click unsubscribe links"
            )
        return channels, notes

    def dispatcher(
        self,
        config: Config,
        channels: dict[str, Channel],
        *,
        observer: Observer | None = None,
    ) -> Dispatcher:
        """A dispatcher on this store, wired to ``channels`` and the environment's limits."""
        from reminders.dispatch import Dispatcher  # noqa: PLC0415  # see TYPE_CHECKING above

        settings = self.settings
        return Dispatcher(
            OutboxManager(self.store),
            self.sending(config),
            channels,
            owner=self.owner,
            limits=settings.limits(),
            workers=settings.workers,
            batch_size=settings.batch_size,
            lease=timedelta(seconds=settings.lease_seconds),
            observer=observer,
        )

    def close(self) -> None:
        """Release the database connections, if any were opened."""
        if "store" in self.__dict__:
            self.store.close()
