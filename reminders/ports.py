"""What the dispatcher drives, one interface each (as APScheduler 4 keeps its in ``abc.py``):
the outbox it claims from and settles through (:class:`reminders.store.OutboxManager`),
and the observer it tells what became of each reminder (:class:`reminders.metrics.Metrics`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from reminders.lifecycle import Outcome, Transition
from reminders.models import Schedules
from reminders.store import Asked, Claimed, Settlement


class Observer(Protocol):
    """Receives what the dispatcher does (metrics); must not block."""

    def outcome(self, channel: str, outcome: str, lateness: float | None) -> None:
        """One reminder's outcome; ``lateness`` in seconds after its due time for a send."""
        ...

    def provider_error(self, channel: str, code: str) -> None:
        """A provider error code was returned."""
        ...


class Outbox(Protocol):
    """What the dispatcher needs of the store (:class:`reminders.store.OutboxManager`)."""

    def prepare(self, now: datetime) -> list[int]:
        """Recover lapsed leases and expire what is overdue; returns the expired ids."""
        ...

    def claim(self, now: datetime, owner: str, lease_until: datetime, limit: int) -> list[Claimed]:
        """Lease a batch of due reminders to ``owner``."""
        ...

    def begin_attempts(
        self, batch: Sequence[tuple[Claimed, int, str]], owner: str, now: datetime
    ) -> list[int | Outcome]:
        """Commit the attempts (reminder, number, body digest) of a batch in one transaction
        before the provider is called; their ids, ``Outcome.SUPPRESSED`` where the address
        opted out meanwhile (settled ``suppressed``), ``Outcome.DEFERRED`` where ``owner`` no
        longer holds the lease (left to whoever does): nothing may be sent for either."""
        ...

    def settle(
        self,
        r: Claimed,
        t: Transition,
        now: datetime,
        *,
        attempt_id: int | None = None,
        opens: Asked | None = None,
    ) -> None:
        """Apply one transition in one transaction (and open the check-in ``opens``)."""
        ...

    def settle_many(self, batch: Sequence[Settlement]) -> None:
        """Apply transitions in one transaction (a batch's outcomes)."""
        ...

    def sweep(self, schedules: Schedules, now: datetime) -> Counter[str]:
        """Close reply windows and re-escalate unacknowledged alerts due by ``now``."""
        ...

    def release_owner(self, owner: str, now: datetime) -> int:
        """Give back ``owner``'s leases that have no attempt in flight."""
        ...

    def complete(self, now: datetime) -> list[str]:
        """Mark enrollments with nothing left to send ``completed``."""
        ...

    def give_back(self, owner: str, now: datetime) -> tuple[int, int]:
        """Return every lease of ``owner``, an attempt in flight put in doubt; (given back, in doubt)."""
        ...
