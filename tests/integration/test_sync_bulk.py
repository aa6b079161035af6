"""The bulk load of a large sync: the database expands the plans, indexes rebuilt after.

A sync inserting :data:`~reminders.store.enrollments.BULK_ROWS` reminders or more uploads
each distinct plan once and lets the database expand them; into an empty ``reminders``
table it also drops the indexes and builds them again at the end, all in the sync's
transaction. These tests force either path with a small file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reminders import patients, validation
from reminders.models import Schedules
from reminders.store import Store
from reminders.store import enrollments as queries
from reminders.store import expand as expansion
from reminders.sync import sync_patients
from reminders.testing.builders import write_patients
from tests.conftest import POSTGRES_URL
from tests.postgres import fresh_schema

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ZONES = ("America/New_York", "Pacific/Auckland", "Asia/Kolkata")


class Boom(Exception):
    """The failure planted in the middle of a load."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh, separate databases of the same kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("REMINDERS_TEST_POSTGRES_URL is not set")
    database = request.getfixturevalue("postgres_database")
    with ExitStack() as stack:
        yield (
            stack.enter_context(fresh_schema(database)),
            stack.enter_context(fresh_schema(database)),
        )


def patients_file(path: Path, count: int, first: int = 0) -> Path:
    """Patients enrolled before, on and after NOW's date (late enrolment: expired history),
    in three zones, with and without email, one paused and one withdrawn."""
    return write_patients(path, patient_records(count, first))


def patient_records(count: int, first: int = 0) -> list[dict[str, Any]]:
    """The records of :func:`patients_file`."""
    records: list[dict[str, Any]] = []
    for i in range(first, first + count):
        record: dict[str, Any] = {
            "id": f"P-{i:04d}",
            "first_name": "Dana",
            "phone": f"+1201555{i % 10000:04d}",
            "surgery_date": (date(2026, 11, 25) - timedelta(days=(i * 7) % 60 - 5)).isoformat(),
            "timezone": ZONES[i % len(ZONES)],
        }
        if i % 2:
            record["email"] = f"p{i}@example.com"
        records.append(record)
    records[1]["status"] = "paused"
    records[2]["status"] = "withdrawn"
    return records


def stored_rows(store: Store) -> list[tuple[Any, ...]]:
    """Every reminder row as the driver returns it (SQLite: the stored text of datetimes)."""
    with store.read() as tx:
        return [tuple(r) for r in tx.conn.exec_driver_sql("SELECT * FROM reminders ORDER BY id")]


def reminder_indexes(store: Store) -> list[Any]:
    """The indexes, unique constraints and primary key of ``reminders`` as the database
    reports them."""
    with store.read() as tx:
        inspector = sa.inspect(tx.conn)
        indexes = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes("reminders")
        )
        unique = sorted(
            (u["name"], tuple(u["column_names"]))
            for u in inspector.get_unique_constraints("reminders")
        )
        key = inspector.get_pk_constraint("reminders")
    return [indexes, unique, (key["name"], tuple(key["constrained_columns"]))]


def statements(store: Store) -> list[str]:
    """Every statement the store's engine sends from now on."""
    sent: list[str] = []
    sa.event.listen(
        store.engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, params, context, many: sent.append(sql),
    )
    return sent


def test_bulk_load_writes_the_rows_the_row_by_row_path_writes(
    two_urls: tuple[str, str], shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same file synced row by row and through the bulk load stores identical rows, ids,
    datetime encodings and indexes."""
    path = patients_file(tmp_path / "p.yaml", 40)
    rows, indexes = [], []
    for url, bulk in zip(two_urls, (10**9, 1), strict=True):
        monkeypatch.setattr(queries, "BULK_ROWS", bulk)
        store = Store(url)
        try:
            sent = statements(store)
            report = sync_patients(store, shipped, path, NOW)
            rows.append(stored_rows(store))
            indexes.append(reminder_indexes(store))
        finally:
            store.close()
        expanded = any(expansion.PLAN_SLOTS in sql for sql in sent)
        assert expanded == (bulk == 1)
        assert len(report.enrolled) == 40
        assert report.reminders["expired"]
        assert report.reminders["planned"]
    assert rows[0]
    assert rows[0] == rows[1]
    assert indexes[0] == indexes[1]


def test_bulk_load_into_an_empty_table_rebuilds_its_indexes_and_keeps_them_otherwise(
    store: Store, shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Indexes are dropped for a bulk load into an empty table only, and are all there after."""
    monkeypatch.setattr(queries, "BULK_ROWS", 1)
    before = reminder_indexes(store)
    sent = statements(store)
    sync_patients(store, shipped, patients_file(tmp_path / "a.yaml", 20), NOW)
    assert any(sql.lstrip().upper().startswith("DROP INDEX") for sql in sent)
    assert reminder_indexes(store) == before
    sent.clear()
    both = patients_file(tmp_path / "b.yaml", 40)
    report = sync_patients(store, shipped, both, NOW)
    assert len(report.enrolled) == 20
    assert any(expansion.PLAN_SLOTS in sql for sql in sent)
    assert not any("DROP" in sql.upper() and "INDEX" in sql.upper() for sql in sent)
    assert not any("CONSTRAINT" in sql.upper() for sql in sent)
    assert reminder_indexes(store) == before


def test_failure_in_the_middle_of_a_bulk_load_leaves_rows_and_indexes_as_they_were(
    store: Store, shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync failing after part of its rows went in, indexes dropped, leaves no row, every
    index, and no temporary table behind: the next sync loads everything."""
    monkeypatch.setattr(queries, "BULK_ROWS", 1)
    monkeypatch.setattr(expansion, "EXPAND_ROWS", 50)  # several INSERT ... SELECT
    path = patients_file(tmp_path / "p.yaml", 30)
    before = reminder_indexes(store)
    steps: list[int] = []

    def fail_midway(stage: str, advance: int, total: int) -> None:
        if stage == "reminders" and advance:
            steps.append(advance)
            if len(steps) == 2:
                raise Boom

    with pytest.raises(Boom):
        sync_patients(store, shipped, path, NOW, progress=fail_midway)
    assert stored_rows(store) == []
    with store.read() as tx:
        assert tx.conn.execute(sa.text("SELECT count(*) FROM enrollments")).scalar() == 0
        assert tx.conn.execute(sa.text("SELECT count(*) FROM late_plans")).scalar() == 0
    assert reminder_indexes(store) == before
    report = sync_patients(store, shipped, path, NOW)
    assert len(report.enrolled) == 30
    with store.read() as tx:
        late = tx.late.count()  # the milestones expired at enrollment, one record per plan
    assert late == report.reminders["expired"] > 0
    assert len(stored_rows(store)) + late == sum(report.reminders.values())
    assert reminder_indexes(store) == before


def test_a_large_file_validated_in_two_processes_gives_what_one_gives(
    shipped: Schedules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation shared with a second process returns the same patients and the same
    problems (file, record, field, message) in the same order as one process."""
    path = patients_file(tmp_path / "p.csv", 30)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4].replace("+1201555", "+1201")  # a bad phone in the first part
    lines[25] = lines[25].replace("Dana", "")  # a missing first name in the second part
    lines[28] = lines[28].replace("P-0027", "P-0010")  # a duplicate id across the parts
    lines[29] = lines[29].replace("Pacific/Auckland", "Mars/Olympus")  # a bad zone, last
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = list(patients.read_records(path, shipped))
    one = validation.validate_records(path, records, shipped)
    monkeypatch.setattr(validation, "PARALLEL_RECORDS", 2)
    two = validation.validate_records(path, records, shipped)
    assert len(one.problems) == 5
    assert [str(p) for p in two.problems] == [str(p) for p in one.problems]
    assert two.problems == one.problems
    assert two.patients == one.patients
    assert len(one.patients) == 30 - 5
