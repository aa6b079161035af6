"""Syncs take turns across instances: PostgreSQL's advisory lock in :meth:`Store.sync`."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from reminders.store import Store


@pytest.mark.postgres
def test_a_second_sync_waits_for_the_first_to_end(postgres_url: str) -> None:
    """While one instance's sync holds its transaction, another's waits on the sync lock
    (seen in ``pg_locks``), and starts once the first commits."""
    first, second = Store(postgres_url), Store(postgres_url)
    entered = threading.Event()

    def other_instance() -> None:
        with second.sync():
            entered.set()

    try:
        with first.sync() as tx:
            me = tx.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            thread = threading.Thread(target=other_instance)
            thread.start()
            waiting = _waiting_on_the_sync_lock(first, me)
            assert waiting
            assert not entered.is_set()
        thread.join(timeout=30)
        assert entered.is_set()
    finally:
        first.close()
        second.close()


def _waiting_on_the_sync_lock(store: Store, holder: int, limit: float = 30.0) -> bool:
    """Whether another backend comes to wait for an advisory lock ``holder`` holds."""
    deadline = time.monotonic() + limit
    query = sa.text(
        "SELECT count(*) FROM pg_locks w JOIN pg_locks h ON h.locktype = 'advisory'"
        " AND h.objid = w.objid AND h.granted AND h.pid = :holder"
        " WHERE w.locktype = 'advisory' AND NOT w.granted"
    )
    while time.monotonic() < deadline:
        with store.engine.connect() as conn:
            if conn.execute(query, {"holder": holder}).scalar():
                return True
        time.sleep(0.05)
    return False
