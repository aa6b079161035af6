"""A sync in parts: a second process validates the next part while this one writes one.

Parts must not change what a sync does: the same rows, ids, late histories, audit events
and report as a sync in one part, and the withdraw guard, decided after every part was
written, still leaves the database as it was. These tests force small parts.
"""

from __future__ import annotations

import contextlib
import gc
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reminders import sync, validation
from reminders.errors import StoreError, SyncRefused
from reminders.models import Schedules
from reminders.patients import read_records
from reminders.store import Store, engine
from reminders.store import enrollments as queries
from reminders.store.bulk import insert_many
from reminders.store.schema import ENROLLMENTS
from reminders.sync import sync_patients
from reminders.testing.builders import write_patients
from tests.integration.test_sync_bulk import (
    NOW,
    patient_records,
    patients_file,
    reminder_indexes,
    statements,
    stored_rows,
    two_urls,  # noqa: F401  # a fixture
)

#: Small parts: the first of one record (validated here), then parts of five, all but
#: the first validated by the second process.
IN_PARTS = {"PART_RECORDS": 5, "PARALLEL_RECORDS": 2}
IN_ONE = {"PART_RECORDS": 10**6, "PARALLEL_RECORDS": 10**6}


def settle(monkeypatch: pytest.MonkeyPatch, how: dict[str, int]) -> None:
    monkeypatch.setattr(sync, "PART_RECORDS", how["PART_RECORDS"])
    monkeypatch.setattr(validation, "PARALLEL_RECORDS", how["PARALLEL_RECORDS"])
    monkeypatch.setattr(queries, "BULK_ROWS", 1)  # every part through the bulk load


def twinned() -> list[dict[str, Any]]:
    """40 patients (late enrolment, paused, withdrawn), then ten more with the plans of the
    first ten: the parts share plans and late histories."""
    records = patient_records(40)
    return records + [
        {**r, "id": f"P-01{i:02d}", "phone": f"+120155501{i:02d}", "status": "active"}
        for i, r in enumerate(records[:10])
    ]


def first_file(path: Path) -> Path:
    """:func:`twinned`, with a bad phone and an id twice far apart."""
    records = twinned()
    records[7]["phone"] = "+1201"
    records.append(dict(records[3]))  # P-0003 again, in another part
    return write_patients(path, records)


def second_file(path: Path) -> Path:
    """The first file, with P-0005 removed, P-0010's surgery a week later, P-0011 withdrawn."""
    records = [r for r in twinned() if r["id"] != "P-0005"]
    for record in records:
        if record["id"] == "P-0010":
            record["surgery_date"] = (
                date.fromisoformat(record["surgery_date"]) + timedelta(days=7)
            ).isoformat()
        if record["id"] == "P-0011":
            record["status"] = "withdrawn"
    return write_patients(path, records)


def everything(store: Store, *, ids: bool = True) -> dict[str, Any]:
    """What a sync stores: reminders, enrollments, late histories, audit events. Without
    ``ids``, the reminders without theirs: ids follow the order of the writes, and a
    re-plan in parts writes the history of a changed patient after the new patients of
    the parts before it, where one part writes it first."""
    rows = stored_rows(store) if ids else sorted(row[1:] for row in stored_rows(store))
    with store.read() as tx:
        q = tx.conn.exec_driver_sql
        return {
            "reminders": rows,
            "enrollments": [tuple(r) for r in q("SELECT * FROM enrollments ORDER BY patient_id")],
            "late": [tuple(r) for r in q("SELECT * FROM late_plans ORDER BY id")],
            # Parts write each part's events together: the same events, in another order.
            "audit": sorted(
                (str(r[0]), str(r[1]), str(r[2]))
                for r in q("SELECT kind, patient_id, detail FROM audit_events")
            ),
            "indexes": reminder_indexes(store),
        }


def test_a_sync_in_parts_stores_what_a_sync_in_one_part_stores(
    two_urls: tuple[str, str],  # noqa: F811  # the fixture
    shipped: Schedules,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Enrolling, then re-planning, withdrawing and removing, in parts of five records
    (validated by a second process) and in one part: the same reports, rows (and ids, as
    enrolled), late histories (each stored once across the parts), audit events, indexes."""
    first, second = first_file(tmp_path / "a.csv"), second_file(tmp_path / "b.csv")
    outcomes = []
    for url, how in zip(two_urls, (IN_ONE, IN_PARTS), strict=True):
        settle(monkeypatch, how)
        store = Store(url)
        try:
            sent = statements(store)
            reports = [sync_patients(store, shipped, first, NOW).as_dict()]
            loads = sum("FROM sync_plan_patients p JOIN" in sql for sql in sent)
            assert (loads > 1) == (how is IN_PARTS)  # one load per part
            enrolled = everything(store)
            reports.append(sync_patients(store, shipped, second, NOW, force=True).as_dict())
            outcomes.append((reports, enrolled, everything(store, ids=False)))
        finally:
            store.close()
    (one, enrolled_one, stored_one), (parts, enrolled_parts, stored_parts) = outcomes
    assert one[0]["problems"]
    assert one[0]["reminders"]["expired"]
    assert one[1]["updated"]
    assert one[1]["withdrawn"] == ["P-0011", "P-0005"]
    assert parts == one
    assert enrolled_one["late"]
    assert enrolled_one["reminders"]
    assert enrolled_parts == enrolled_one
    assert stored_parts == stored_one


def test_a_sync_the_guard_refuses_after_its_parts_were_written_changes_nothing(
    store: Store, shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard needs every part, so parts are written before it decides: refused, the
    sync's transaction takes all of them back."""
    settle(monkeypatch, IN_PARTS)
    sync_patients(store, shipped, patients_file(tmp_path / "a.csv", 40), NOW)
    before = everything(store)
    # Half the patients gone, and twenty new ones the parts enrol before the guard decides.
    half = write_patients(tmp_path / "b.csv", patient_records(20) + patient_records(20, 100))
    with pytest.raises(SyncRefused, match="would withdraw 20 of"):
        sync_patients(store, shipped, half, NOW)
    assert everything(store) == before


def _children() -> set[int]:
    me = os.getpid()
    return {int(pid) for pid in Path(f"/proc/{me}/task/{me}/children").read_text().split()}


#: A second process that answers the first part it is given, then fails.
_FAILS_AFTER_ONE = (
    "-c",
    "import pickle, sys; from reminders.validation import _validate_chunk as check; "
    "file, schedules, count = pickle.load(sys.stdin.buffer); "
    "part = pickle.load(sys.stdin.buffer); "
    "pickle.dump(check(file, part, schedules), sys.stdout.buffer); sys.exit(3)",
)


@pytest.mark.parametrize("worker", ["answers", "fails after one part"])
def test_parts_the_second_process_does_not_answer_are_validated_here(
    worker: str, shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In parts, with the second process or without it, and when it fails midway: the same
    patients and problems, in the same order, as one process validating all at once."""
    path = first_file(tmp_path / "a.csv")
    records = read_records(path, shipped)
    alone = validation.validate_records(path, records, shipped)
    monkeypatch.setattr(validation, "PARALLEL_RECORDS", 2)
    if worker != "answers":
        monkeypatch.setattr(validation, "_WORKER", _FAILS_AFTER_ONE)
    parts = list(validation.validate_parts(path, records, shipped, 5))
    assert len(parts) == 11  # one record, then parts of five
    assert [p for part in parts for p in part.patients] == alone.patients
    assert [p for part in parts for p in part.problems] == alone.problems
    assert len(alone.problems) == 3  # the bad phone, and P-0003 twice


def test_a_sync_that_stops_in_the_middle_stops_the_second_process(
    shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts no longer wanted (the sync failed) do not leave the second process running."""
    path = first_file(tmp_path / "a.csv")
    records = read_records(path, shipped)
    monkeypatch.setattr(validation, "PARALLEL_RECORDS", 2)
    before = _children()
    parts = validation.validate_parts(path, records, shipped, 5)
    next(parts)
    next(parts)  # an answer of the second process
    assert _children() - before  # it runs
    parts.close()
    assert _children() == before


def test_a_sync_leaves_the_checkpoint_to_a_thread_and_its_connection_as_it_was(
    shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: the sync's commit leaves its write-ahead log to a thread to fold into the
    database file (the commit of a large load waited seconds for it); the connection it
    used checkpoints automatically again afterwards, with its small page cache and no
    sorting thread."""
    monkeypatch.setattr(engine, "_AUTOCHECKPOINT_PAGES", 10)  # 40 KiB: a small sync is past it
    db = tmp_path / "r.db"
    store = Store(f"sqlite:///{db}")
    folds: list[None] = []
    unfolded = Store._fold_soon
    monkeypatch.setattr(Store, "_fold_soon", lambda self: folds.append(None))
    try:
        schema = db.stat().st_size  # the migrations, checkpointed
        sync_patients(store, shipped, patients_file(tmp_path / "a.csv", 60), NOW)
        assert folds == [None]
        assert Path(f"{db}-wal").stat().st_size > 10 * 4096
        assert db.stat().st_size == schema  # the commit did not checkpoint
        with store.engine.connect() as conn:  # the pool's one connection: the sync's
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -engine._CACHE_KIB
            assert conn.exec_driver_sql("PRAGMA threads").scalar() == 0
        monkeypatch.setattr(Store, "_fold_soon", unfolded)
        store._fold_soon()
        for fold in store._folds:
            fold.join()
        assert db.stat().st_size > 2 * schema  # folded
    finally:
        store.close()


@pytest.mark.postgres
def test_a_failed_copy_is_a_store_error_without_the_values(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL takes large inserts through COPY: what fails there says what a failed
    statement says, as a StoreError, and never the rows' values."""
    store = Store(postgres_url)
    row = {
        "patient_id": "P-1",
        "first_name": "Dana",
        "last_name": "Lee",
        "phone": "+12015550100",
        "email": None,
        "surgery_date": NOW.date(),
        "protocol": "phr",
        "timezone": "UTC",
        "language": "en",
        "channels": "sms",
        "status": "active",
        "attributes": "{}",
        "source_hash": "x",
        "created_at": NOW,
        "updated_at": NOW,
        "late_plan_id": None,
    }
    rows = [{**row, "patient_id": f"P-{i}"} for i in range(1_000)] + [row]  # P-1 twice
    try:
        with pytest.raises(StoreError) as raised, store.write(failure="not written") as tx:
            insert_many(tx.conn, ENROLLMENTS, rows)
        message = str(raised.value)
        assert message.startswith("not written: database ")
        assert "UniqueViolation" in message
        assert "+12015550100" not in message
        assert "Dana" not in message
        with store.read() as tx:
            assert (
                tx.conn.execute(sa.select(sa.func.count()).select_from(ENROLLMENTS)).scalar() == 0
            )
    finally:
        store.close()


@pytest.mark.parametrize("enabled", [True, False], ids=["collector on", "collector off"])
@pytest.mark.parametrize("fails", [False, True], ids=["sync done", "sync failed"])
def test_a_sync_pauses_the_cycle_collector_and_leaves_it_as_it_was(
    enabled: bool, fails: bool, store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """The collector is off while a sync runs (it walked the sync's objects again and
    again), and as it was after it, done or failed: a service left without it would grow."""
    seen: list[bool] = []

    def progress(_stage: str, _advance: int, _total: int) -> None:
        seen.append(gc.isenabled())
        if fails:
            raise RuntimeError("planted")

    gc.enable() if enabled else gc.disable()
    try:
        with contextlib.suppress(RuntimeError):
            sync_patients(
                store, shipped, patients_file(tmp_path / "a.csv", 20), NOW, progress=progress
            )
        assert seen
        assert not any(seen)
        assert gc.isenabled() == enabled
    finally:
        gc.enable()
