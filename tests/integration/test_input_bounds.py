"""Hostile or runaway input against a real SQLite and PostgreSQL outbox.

A record the database could not hold is refused at the boundary and the others sync; a
database error surfaces as a StoreError that carries no patient data.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from reminders.errors import PatientFileError, StoreError
from reminders.models import Schedules
from reminders.store import Store
from reminders.sync import sync_patients

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EMAIL = "dana.reyes@example.com"


def patient(pid: str, **fields: Any) -> dict[str, Any]:
    """A valid fictional patient record."""
    record: dict[str, Any] = {
        "id": pid,
        "first_name": "Dana",
        "last_name": "Reyes",
        "phone": "+12015550123",
        "email": EMAIL,
        "surgery_date": "2026-11-24",
    }
    record.update(fields)
    return record


def enrolled(store: Store) -> list[str]:
    """Every stored patient id."""
    with store.read() as tx:
        return sorted(tx.enrollments.index())


def test_over_long_id_is_refused_and_the_others_sync(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A 10,000-character id is one record's problem; the records around it are enrolled."""
    # Incompressible, so that PostgreSQL cannot squeeze it into its index (2,704 bytes).
    long_id = "".join(hashlib.sha256(bytes([i])).hexdigest() for i in range(157))[:10_000]
    path = tmp_path / "patients.yaml"
    records = [patient("P-1"), patient(long_id), patient("P-2")]
    path.write_text(yaml.safe_dump({"patients": records}), encoding="utf-8")

    report = sync_patients(store, shipped, path, NOW)

    assert report.enrolled == ["P-1", "P-2"]
    assert [(p.field, p.message) for p in report.problems] == [
        ("id", "is 10,000 characters long; the limit is 64")
    ]
    assert enrolled(store) == ["P-1", "P-2"]


def test_database_error_is_a_store_error_without_patient_data(store: Store) -> None:
    """A failing statement raises StoreError naming the failure, never the row's values."""
    row = {
        "patient_id": "P-1",
        "first_name": None,  # NOT NULL: the database refuses the row
        "last_name": "Reyes",
        "phone": "+12015550123",
        "email": EMAIL,
        "surgery_date": date(2026, 11, 24),
        "protocol": "proximal-hamstring-repair",
        "timezone": "America/New_York",
        "language": "en",
        "channels": "sms,email",
        "status": "active",
        "attributes": "{}",
        "source_hash": "",
        "created_at": NOW,
        "updated_at": NOW,
    }

    with pytest.raises(StoreError) as caught, store.write() as tx:
        tx.enrollments.upsert([row], [])

    text = str(caught.value)
    assert "NotNullViolation" in text or "NOT NULL constraint failed" in text
    for value in (EMAIL, "+12015550123", "Reyes", "2026-11-24"):
        assert value not in text
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert enrolled(store) == []


def test_engine_errors_never_render_parameters(store: Store) -> None:
    """An error the engine raises for a failed statement shows the SQL but not its values."""
    query = sa.text("SELECT patient_id FROM enrollments WHERE email = :email AND no_such = 1")

    with pytest.raises(sa.exc.DBAPIError) as caught, store.engine.connect() as conn:
        conn.execute(query, {"email": EMAIL})

    assert "no_such" in str(caught.value)
    assert EMAIL not in str(caught.value)


def test_billion_laughs_in_one_record_refuses_the_file_quickly(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Nested aliases in one record's attributes refuse the whole file before it is expanded."""
    laughs = ["      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [
        f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 7)
    ]  # 9^7 = 4.8 million values once written out
    text = (
        "patients:\n"
        "  - {id: P-1, first_name: Dana, phone: '+12015550123', surgery_date: 2026-11-24}\n"
        "  - id: P-2\n"
        "    first_name: Sam\n"
        "    phone: '+12015550124'\n"
        "    surgery_date: 2026-11-24\n"
        "    attributes:\n" + "\n".join(laughs) + "\n"
    )
    path = tmp_path / "patients.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(PatientFileError) as caught:
        sync_patients(store, shipped, path, NOW)

    assert str(caught.value).startswith(f"{path}: refused: its aliases (*name) expand ")
    assert enrolled(store) == []


def test_recursive_alias_refuses_the_file(store: Store, shipped: Schedules, tmp_path: Path) -> None:
    """An alias inside itself (``&a [*a]``) refuses the file instead of crashing the sync."""
    text = (
        "patients:\n"
        "  - {id: P-1, first_name: Dana, phone: '+12015550123', surgery_date: 2026-11-24,\n"
        "     attributes: {loop: &loop [*loop]}}\n"
    )
    path = tmp_path / "patients.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(PatientFileError, match="refused: a recursive alias at line 3"):
        sync_patients(store, shipped, path, NOW)

    assert enrolled(store) == []


def test_surgery_date_at_the_end_of_the_calendar_does_not_stop_the_sync(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A surgery date of 9999-12-01 is one record's problem; the others are planned."""
    path = tmp_path / "patients.yaml"
    records = [patient("P-1"), patient("P-2", surgery_date="9999-12-01"), patient("P-3")]
    path.write_text(yaml.safe_dump({"patients": records}), encoding="utf-8")

    report = sync_patients(store, shipped, path, NOW)

    assert report.enrolled == ["P-1", "P-3"]
    assert [p.field for p in report.problems] == ["surgery_date"]
