"""Console delivery: the dry run used when no provider is configured."""

from __future__ import annotations

import itertools
import threading

from rich.console import Console
from rich.markup import escape

from reminders.channels.base import Message, Receipt
from reminders.fields import mask_email, mask_phone


class ConsoleChannel:
    """Prints each message to the terminal instead of sending it."""

    def __init__(self, name: str, console: Console | None = None) -> None:
        #: Channel name.
        self.name = name
        self._console = console or Console()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        """Print the message with a masked recipient; return a console receipt."""
        to = mask_phone(message.to) if message.channel == "sms" else mask_email(message.to)
        with self._lock:
            number = next(self._ids)
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
