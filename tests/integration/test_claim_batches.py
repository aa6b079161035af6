"""The claim takes due reminders in due order, a batch of at most its size at a time.

On PostgreSQL the claim is a prepared statement on its generic plan from its sixth run on
one connection (the driver prepares from the fifth), so a run of claims here goes through
both the first, planned ones and the prepared one.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from reminders.models import Schedules
from reminders.store import Store
from reminders.store.schema import REMINDERS
from tests.integration.test_dispatch import DAY1
from tests.integration.test_dispatch_faults import DUE, PATIENTS, enrol

LEASE = DAY1 + timedelta(minutes=10)


def due_order(store: Store) -> list[int]:
    """Ids of the reminders due on day 1, earliest first (ties by id)."""
    c = REMINDERS.c
    with store.read() as tx:
        return list(
            tx.conn.execute(
                sa.select(c.id)
                .where(c.status == "planned", c.not_before <= DAY1, c.expires_at > DAY1)
                .order_by(c.not_before, c.id)
            ).scalars()
        )


def test_claims_take_the_due_reminders_in_due_order_a_batch_at_a_time(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """One claim after another, each of at most one reminder, then of at most three: every due reminder is leased once, in due order, and a claim with nothing left due leases nothing."""
    enrol(store, shipped, tmp_path, *PATIENTS)
    expected = due_order(store)
    assert len(expected) == DUE
    taken: list[list[int]] = []
    for limit in [1] * 7 + [3] * 2:  # 7 > the driver's prepare threshold (5)
        with store.write() as tx:
            batch = tx.outbox.claim_due(DAY1, "tick-1", LEASE, limit)
        assert all(r.recipient.patient_id in PATIENTS for r in batch)
        taken.append([r.id for r in batch])
    assert taken == [[i] for i in expected[:7]] + [expected[7:10], []]
    with store.write() as tx:
        assert tx.outbox.claim_due(DAY1, "tick-1", LEASE, 1) == []
