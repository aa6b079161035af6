"""An in-memory channel for tests: records messages and fails on demand."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from reminders.channels.base import Message, Receipt
from reminders.errors import DeliveryError, InDoubtError


class MemoryChannel:
    """Keeps every accepted message in :attr:`sent`; ``fail`` may raise for chosen messages.

    With ``accept_in_doubt`` an :class:`~reminders.errors.InDoubtError` returned by
    ``fail`` is raised *after* the message was accepted, like a provider that took
    the message and then timed out; :meth:`reconcile` then finds it.
    """

    def __init__(
        self,
        name: str,
        fail: Callable[[Message], DeliveryError | None] | None = None,
        *,
        accept_in_doubt: bool = False,
    ) -> None:
        #: Channel name.
        self.name = name
        #: Accepted messages in order.
        self.sent: list[Message] = []
        #: Every call, accepted or not.
        self.calls: list[Message] = []
        #: Every reconcile question asked.
        self.reconciled: list[Message] = []
        #: How many times a batch ended (``close`` was called).
        self.closed = 0
        self._fail = fail
        self._accept_in_doubt = accept_in_doubt
        self._lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        """Record the message, or raise what ``fail`` returns for it."""
        with self._lock:
            self.calls.append(message)
            error = self._fail(message) if self._fail else None
            if error is not None and not (
                self._accept_in_doubt and isinstance(error, InDoubtError)
            ):
                raise error
            self.sent.append(message)
            receipt = Receipt(provider_id=f"MEM{len(self.sent):06d}")
        if error is not None:
            raise error
        return receipt

    def close(self) -> None:
        """Nothing to release; counted in :attr:`closed` so tests can see batches end."""
        with self._lock:
            self.closed += 1

    def reconcile(
        self, message: Message, since: datetime, digests: frozenset[str]
    ) -> Receipt | None:
        """The receipt of an accepted message for the same reminder, if any."""
        del since, digests  # every accepted message is remembered with its reminder id
        with self._lock:
            self.reconciled.append(message)
            for index, accepted in enumerate(self.sent, start=1):
                if accepted.reminder_id == message.reminder_id:
                    return Receipt(provider_id=f"MEM{index:06d}")
        return None
