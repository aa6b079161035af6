"""An in-memory channel for tests: records messages and fails on demand."""

from __future__ import annotations

import threading
from collections.abc import Callable

from reminders.channels.base import Message, Receipt
from reminders.errors import DeliveryError


class MemoryChannel:
    """Keeps every accepted message in :attr:`sent`; ``fail`` may raise for chosen messages."""

    def __init__(
        self, name: str, fail: Callable[[Message], DeliveryError | None] | None = None
    ) -> None:
        #: Channel name.
        self.name = name
        #: Accepted messages in order.
        self.sent: list[Message] = []
        #: Every call, accepted or not.
        self.calls: list[Message] = []
        self._fail = fail
        self._lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        """Record the message, or raise what ``fail`` returns for it."""
        with self._lock:
            self.calls.append(message)
            error = self._fail(message) if self._fail else None
            if error is not None:
                raise error
            self.sent.append(message)
            return Receipt(provider_id=f"MEM{len(self.sent):06d}")
