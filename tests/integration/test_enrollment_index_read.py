"""The sync's enrollment index read from a real store: every row, and the connection as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reminders.records import RawRecord
from reminders.store import Store, StoredEnrollment
from reminders.sync import sync_patients
from reminders.testing import make_schedules, patient_record, write_patients

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SCHEDULES = make_schedules()


def test_index_holds_every_enrollment_as_stored(store: Store, tmp_path: Path) -> None:
    """The index gives each stored enrollment's digest and status, across fetch batches."""
    records = [patient_record(f"P-{n:05d}") for n in range(6_000)]
    records[7]["status"] = "paused"
    path = write_patients(tmp_path / "patients.yaml", records)
    sync_patients(store, SCHEDULES, path, NOW)
    with store.read() as tx:
        index = tx.enrollments.index()
    assert len(index) == 6_000
    digest = RawRecord("patients[7]", records[7]).digest(SCHEDULES.fingerprint)
    assert index["P-00007"] == StoredEnrollment("P-00007", digest, "paused")
    assert {e.status for e in index.values()} == {"active", "paused"}


def test_reading_the_index_leaves_the_page_cache_size_as_it_was(store: Store) -> None:
    """A sync raises its connection's SQLite page cache for bulk work; reading the index
    through a small one must hand the large one back."""
    with store.sync() as tx:
        if tx.conn.dialect.name != "sqlite":
            return
        before = tx.conn.exec_driver_sql("PRAGMA cache_size").scalar()
        tx.enrollments.index()
        after = tx.conn.exec_driver_sql("PRAGMA cache_size").scalar()
    assert after == before
