"""A claimed batch: its attempts committed together before any send, its outcomes together after.

The process may die anywhere in between (the test raises an exception no handler of the
dispatcher takes, as a killed process stops): after the lease lapses, another dispatcher
reconciles every attempt left pending, so each reminder reaches the provider exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reminders.channels.base import Message
from reminders.dispatch import Dispatcher
from reminders.errors import DeliveryError
from reminders.lifecycle import Outcome
from reminders.models import Schedules
from reminders.store import Claimed, OutboxManager, Settlement, Store
from reminders.store.schema import ATTEMPTS
from reminders.templates import Templates
from tests.integration.test_dispatch import DAY1
from tests.integration.test_dispatch_faults import (
    DUE,
    PATIENTS,
    Channels,
    dispatcher,
    enrol,
    statuses,
)

#: After the lease of the dead process's claim (10 minutes) lapsed.
LATER = DAY1 + timedelta(minutes=11)


class Died(BaseException):
    """The process stops here: nothing after this line of the tick runs."""


class DyingOutbox(OutboxManager):
    """An outbox whose process dies when it is about to write a batch's outcomes."""

    def settle_many(self, batch: Sequence[Settlement]) -> None:
        """Die instead of writing."""
        raise Died


def whole_batch(
    outbox: OutboxManager, schedules: Schedules, templates: Templates, channels: Channels
) -> Dispatcher:
    """Every due reminder in one batch, sent one at a time."""
    d = dispatcher(outbox, schedules, templates, channels)
    d.batch_size = DUE
    return d


def delivered_once(channels: Channels) -> bool:
    """Every due reminder reached its channel, none twice."""
    ids = [m.reminder_id for m in channels.sent()]
    return len(set(ids)) == len(ids) == DUE


@pytest.mark.parametrize("reached", [0, 3])
def test_a_process_that_dies_between_the_attempts_commit_and_the_sends_sends_nothing_twice(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path, reached: int
) -> None:
    """Dying after the batch's attempts were committed and ``reached`` of its messages were sent: the next dispatcher finds those at the provider and sends only the rest."""
    enrol(store, shipped, tmp_path, *PATIENTS)
    channels = Channels()

    def die_after(message: Message) -> DeliveryError | None:
        if len(channels.sent()) >= reached:
            raise Died
        return None

    channels["sms"]._fail = die_after
    channels["email"]._fail = die_after
    with pytest.raises(Died):
        whole_batch(OutboxManager(store), shipped, templates, channels).tick(DAY1)
    assert len(channels.sent()) == reached
    assert statuses(store) == {"sending": DUE}

    channels["sms"]._fail = channels["email"]._fail = None
    counts = whole_batch(OutboxManager(store), shipped, templates, channels).tick(LATER).counts
    assert (counts["reconciled"], counts["sent"]) == (reached, DUE - reached)
    assert statuses(store) == {"sent": DUE}
    assert delivered_once(channels)


def test_a_process_that_dies_before_writing_the_outcomes_sends_nothing_twice(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """Dying after every send of the batch but before its outcomes were written: the next dispatcher finds each one at the provider and sends none again."""
    enrol(store, shipped, tmp_path, *PATIENTS)
    channels = Channels()
    with pytest.raises(Died):
        whole_batch(DyingOutbox(store), shipped, templates, channels).tick(DAY1)
    assert len(channels.sent()) == DUE
    assert statuses(store) == {"sending": DUE}

    counts = whole_batch(OutboxManager(store), shipped, templates, channels).tick(LATER).counts
    assert (counts["reconciled"], counts["sent"]) == (DUE, 0)
    assert statuses(store) == {"sent": DUE}
    assert delivered_once(channels)


class StalledOutbox(OutboxManager):
    """An outbox whose process stalls past its lease between the claim and the attempts
    (a suspended VM, a long pause): meanwhile another instance recovers the lapsed leases
    and sends the batch."""

    def __init__(self, store: Store, meanwhile: Dispatcher) -> None:
        super().__init__(store)
        self.meanwhile = meanwhile

    def begin_attempts(
        self, batch: Sequence[tuple[Claimed, int, str]], owner: str, now: datetime
    ) -> list[int | Outcome]:
        """Let the other instance run its tick first."""
        self.meanwhile.tick(LATER)
        return super().begin_attempts(batch, owner, now)


def test_a_process_that_lost_its_lease_before_the_attempts_sends_nothing(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """A dispatcher that wakes after another instance took over its lapsed leases records no
    attempt and sends nothing: each reminder reaches the provider once, from the other."""
    enrol(store, shipped, tmp_path, *PATIENTS)
    channels = Channels()
    other = whole_batch(OutboxManager(store), shipped, templates, channels)
    other.owner = "other-instance"
    stalled = whole_batch(StalledOutbox(store, other), shipped, templates, channels)

    counts = stalled.tick(DAY1).counts

    assert (counts["deferred"], counts["sent"]) == (DUE, 0)
    assert statuses(store) == {"sent": DUE}
    assert delivered_once(channels)
    with store.read() as tx:
        owners = {a["owner"] for a in tx.conn.execute(sa.select(ATTEMPTS)).mappings()}
    assert owners == {"other-instance"}
