"""Console delivery: the dry run used when no provider is configured.

On a terminal each message is printed with its text and a masked recipient. Off a
terminal (journald, Docker, a cron job's pipe) stdout ends up in the logs, and logs never
carry message bodies: there the channel writes one masked log line per message instead,
unless the text was asked for (``REMINDERS_CONSOLE_TEXT=1``, or ``reminders demo``).
"""

from __future__ import annotations

import itertools
import threading

from rich.console import Console
from rich.markup import escape

from reminders import logs
from reminders.channels.base import Message, Receipt
from reminders.fields import mask_email, mask_phone

log = logs.get("reminders.console")


class ConsoleChannel:
    """Prints each message to the terminal instead of sending it."""

    def __init__(self, name: str, console: Console | None = None, *, text: bool = False) -> None:
        #: Channel name.
        self.name = name
        self._console = console or Console()
        #: Print message texts even when the console is not a terminal.
        self.text = text
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        """Print the message (or log a masked line of it off a terminal); return a console receipt."""
        to = mask_phone(message.to) if message.channel == "sms" else mask_email(message.to)
        with self._lock:
            number = next(self._ids)
            if not (self.text or self._console.is_terminal):
                log.info(
                    "dry_run.delivered",
                    reminder_id=message.reminder_id,
                    patient_id=message.patient_id,
                    channel=message.channel,
                    to=to,
                    local_time=message.local_time,
                    characters=len(message.text),
                )
                return Receipt(provider_id=f"console-{number}")
            head = (
                f"[bold]{escape(message.local_time)}[/]  {message.channel.upper():5} "
                f"{escape(message.patient_id)} -> {escape(to)}"
            )
            self._console.print(head)
            if message.subject:
                self._console.print(f"  [italic]Subject:[/] {escape(message.subject)}")
            for line in message.text.splitlines():
                self._console.print(f"  {escape(line)}", highlight=False)
            self._console.print()
        return Receipt(provider_id=f"console-{number}")

    def close(self) -> None:
        """Nothing to release."""
