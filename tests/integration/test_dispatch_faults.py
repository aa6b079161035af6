"""The dispatcher when the database stops taking writes in the middle of a tick.

A real outbox (SQLite, and PostgreSQL when configured) behind a manager that fails
where a full disk fails a write: the test picks which write, since a disk does not
(the command-level test with a really full SQLite database is in
``tests/acceptance/test_disk_full.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reminders.channels.base import Message
from reminders.channels.memory import MemoryChannel
from reminders.compose import Composer
from reminders.dispatch import Dispatcher
from reminders.errors import StoreError
from reminders.models import Schedules
from reminders.store import OutboxManager, Settlement, Store
from reminders.templates import Templates
from tests.integration.test_dispatch import DAY1, enrol
from tests.integration.test_sync import timeline

PATIENTS = ("P-1", "P-2", "P-3", "P-4", "P-5")
#: Every patient gets an SMS and an email on day 1.
DUE = 2 * len(PATIENTS)
#: Reminders claimed at a time.
BATCH = 2
FULL = "database sqlite:///x.db: OperationalError (SQLITE_FULL): database or disk is full"


class FillingOutbox(OutboxManager):
    """An outbox whose database fills up after ``settles`` batches of outcomes were written."""

    def __init__(self, store: Store, settles: int, *, give_back: bool = True) -> None:
        super().__init__(store)
        self.settles = settles
        self.can_give_back = give_back

    def settle_many(self, batch: Sequence[Settlement]) -> None:
        """Write a batch's outcomes, or fail as a full disk does once ``settles`` is used up."""
        if self.settles <= 0:
            raise StoreError(FULL)
        self.settles -= 1
        super().settle_many(batch)

    def give_back(self, owner: str, now: datetime) -> tuple[int, int]:
        """Give the leases back, unless the disk refuses that write too."""
        if not self.can_give_back:
            raise StoreError(FULL)
        return super().give_back(owner, now)


def dispatcher(
    outbox: OutboxManager, schedules: Schedules, templates: Templates, channels: Channels
) -> Dispatcher:
    """One worker and batches of 2, so the failing write is the same one every run."""
    return Dispatcher(
        outbox,
        Composer(schedules, templates),
        channels,
        owner="tick-1",
        workers=1,
        batch_size=BATCH,
    )


class Channels(dict[str, MemoryChannel]):
    """An SMS and an email channel that remember what they sent, across dispatchers."""

    def __init__(self) -> None:
        super().__init__(sms=MemoryChannel("sms"), email=MemoryChannel("email"))

    def sent(self) -> list[Message]:
        """Every message either channel accepted."""
        return self["sms"].sent + self["email"].sent


def statuses(store: Store) -> dict[str, int]:
    """Day-1 reminders of every patient by status."""
    found: dict[str, int] = {}
    for pid in PATIENTS:
        for e in timeline(store, pid):
            if e.milestone == "crutches-toe-touch":
                found[e.status] = found.get(e.status, 0) + 1
    return found


def test_a_tick_stops_at_the_first_database_error_and_gives_every_lease_back(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """When the second batch's outcomes cannot be written, nothing more is claimed or sent, its leases are given back (its sends in doubt), and the next tick sends the rest once."""
    enrol(store, shipped, tmp_path, *PATIENTS)
    channels = Channels()

    with pytest.raises(StoreError) as stopped:
        dispatcher(FillingOutbox(store, settles=1), shipped, templates, channels).tick(DAY1)

    assert len(channels.sent()) == 2 * BATCH, "a send after the database failed"
    message = str(stopped.value)
    assert message.startswith(f"tick stopped: {FULL}; {BATCH} claimed reminders given back")
    assert f"({BATCH} may have reached the provider" in message
    assert statuses(store) == {"sent": BATCH, "planned": DUE - BATCH}

    counts = dispatcher(OutboxManager(store), shipped, templates, channels).tick(DAY1).counts
    assert (counts["reconciled"], counts["sent"]) == (BATCH, DUE - 2 * BATCH)
    assert statuses(store) == {"sent": DUE}
    assert len({m.reminder_id for m in channels.sent()}) == len(channels.sent()) == DUE


def test_leases_that_cannot_be_given_back_lapse_and_the_error_says_so(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """When giving the leases back fails too, the error says they return once the lease lapses; a tick after that sends each reminder once."""
    enrol(store, shipped, tmp_path, *PATIENTS)
    channels = Channels()
    outbox = FillingOutbox(store, settles=0, give_back=False)

    with pytest.raises(StoreError, match=r"could not be given back either.*within 10 minutes"):
        dispatcher(outbox, shipped, templates, channels).tick(DAY1)

    assert statuses(store) == {"sending": BATCH, "planned": DUE - BATCH}
    later = DAY1 + timedelta(minutes=11)
    counts = dispatcher(OutboxManager(store), shipped, templates, channels).tick(later).counts
    assert (counts["reconciled"], counts["sent"]) == (BATCH, DUE - BATCH)
    assert statuses(store) == {"sent": DUE}
    assert len({m.reminder_id for m in channels.sent()}) == len(channels.sent()) == DUE
