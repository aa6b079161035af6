"""Sync against a real SQLite outbox: enrol, re-plan, withdraw, pause, guard, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from reminders import testing
from reminders.errors import PatientFileError, SyncRefused
from reminders.models import Schedules
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.testing import make_schedules
from tests.conftest import REPO

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def patient(pid: str, **fields: Any) -> dict[str, Any]:
    """A valid fictional patient record."""
    record: dict[str, Any] = {
        "id": pid,
        "first_name": "Dana",
        "phone": "+12015550123",
        "email": f"{pid.lower()}@example.com",
        "surgery_date": "2026-11-24",
        "timezone": "America/New_York",
    }
    record.update(fields)
    return record


def write(path: Path, *records: dict[str, Any]) -> Path:
    """Write a patients YAML file."""
    path.write_text(yaml.safe_dump({"patients": list(records)}, sort_keys=False))
    return path


def timeline(store: Store, pid: str) -> list[TimelineEntry]:
    with store.read() as tx:
        return tx.views.timeline(pid)


def by_key(entries: list[TimelineEntry]) -> dict[tuple[str, int, str], TimelineEntry]:
    return {(e.milestone, e.occurrence, e.channel): e for e in entries}


def mark_sent(store: Store, entries: list[TimelineEntry]) -> None:
    """Record the given reminders as sent, as the dispatcher would."""
    testing.mark_sent(store, [e.id for e in entries], NOW)


def test_new_patient_is_planned_on_every_milestone_and_channel(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A new patient gets one reminder per milestone occurrence and channel, due at the local send time."""
    path = write(tmp_path / "p.yaml", patient("P-1", attributes={"goal": "sport"}))
    report = sync_patients(store, shipped, path, NOW)
    assert report.enrolled == ["P-1"]
    entries = timeline(store, "P-1")
    protocol = shipped.protocols["proximal-hamstring-repair"]
    expected = {
        (m.id, occ, ch)
        for m in protocol.milestones
        for occ in range(1, len(m.offsets()) + 1)
        for ch in m.channels
    }
    assert set(by_key(entries)) == expected
    zone = ZoneInfo("America/New_York")
    for e in entries:
        milestone = protocol.milestone(e.milestone)
        assert milestone is not None
        local = e.due_at.astimezone(zone)
        assert local.time() == milestone.send_time
        assert local.date() == date(2026, 11, 24) + timedelta(
            days=milestone.offsets()[e.occurrence - 1]
        )


def test_resync_of_unchanged_file_changes_nothing(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Running the same sync twice writes nothing the second time."""
    path = write(tmp_path / "p.yaml", patient("P-1"), patient("P-2"))
    sync_patients(store, shipped, path, NOW)
    before = timeline(store, "P-1")
    report = sync_patients(store, shipped, path, NOW + timedelta(hours=1))
    assert report.unchanged == 2
    assert not report.changed
    assert timeline(store, "P-1") == before


def test_condition_excludes_milestone_for_patients_without_the_attribute(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A milestone with `when: {goal: sport}` is planned only for patients with that attribute."""
    path = write(tmp_path / "p.yaml", patient("P-1", attributes={"goal": "sport"}), patient("P-2"))
    sync_patients(store, shipped, path, NOW)
    conditional = [
        m.id for m in shipped.protocols["proximal-hamstring-repair"].milestones if m.when
    ]
    assert conditional
    assert any(e.milestone in conditional for e in timeline(store, "P-1"))
    assert not any(e.milestone in conditional for e in timeline(store, "P-2"))


def test_late_enrollment_expires_past_milestones_and_plans_current_ones(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A patient enrolled 10 weeks after surgery has early milestones expired and later ones planned."""
    path = write(tmp_path / "p.yaml", patient("P-1", surgery_date="2026-09-16"))
    report = sync_patients(store, shipped, path, NOW)
    entries = timeline(store, "P-1")
    assert report.reminders["expired"] > 0
    for e in entries:
        assert e.status == ("expired" if e.expires_at <= NOW else "planned")
    assert {e.status for e in entries} == {"expired", "planned"}


def test_surgery_date_change_replans_unsent_and_keeps_sent(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A new surgery date moves unsent reminders; sent ones stay sent with their old time.

    The day-1 advice went out before the new date, so it is planned again for the new
    date as a copy (occurrence 1001); the sent one is left as it was.
    """
    path = write(tmp_path / "p.yaml", patient("P-1"))
    sync_patients(store, shipped, path, NOW)
    first = by_key(timeline(store, "P-1"))
    day1 = [e for k, e in first.items() if k[0] == "crutches-toe-touch"]
    mark_sent(store, day1)

    write(path, patient("P-1", surgery_date="2026-12-01"))
    report = sync_patients(store, shipped, path, NOW)
    assert report.updated == ["P-1"]
    after = by_key(timeline(store, "P-1"))
    copies = {(m, 1001, ch) for m, _, ch in first if m == "crutches-toe-touch"}
    assert set(after) == set(first) | copies
    for key, e in after.items():
        if key in copies:
            assert e.status == "planned"
            assert e.due_at == first[key[0], 1, key[2]].due_at + timedelta(days=7)
        elif key[0] == "crutches-toe-touch":
            assert e.status == "sent"
            assert e.due_at == first[key].due_at
        else:
            assert e.status == "planned"
            assert e.due_at == first[key].due_at + timedelta(days=7)


def test_removed_patient_is_withdrawn_and_pending_cancelled(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A patient missing from the file is withdrawn; pending reminders become cancelled, sent stay."""
    records = [patient(f"P-{i}") for i in range(1, 7)]
    path = write(tmp_path / "p.yaml", *records)
    sync_patients(store, shipped, path, NOW)
    sent = [e for e in timeline(store, "P-1") if e.milestone == "crutches-toe-touch"]
    mark_sent(store, sent)
    write(path, *records[1:])
    report = sync_patients(store, shipped, path, NOW)
    assert report.withdrawn == ["P-1"]
    statuses = {e.status for e in timeline(store, "P-1") if e.milestone != "crutches-toe-touch"}
    assert statuses == {"cancelled"}
    assert {e.status for e in timeline(store, "P-1") if e.milestone == "crutches-toe-touch"} == {
        "sent"
    }
    with store.read() as tx:
        assert tx.views.enrollment("P-1").status == "withdrawn"


def test_status_withdrawn_in_file_cancels_pending(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Setting status: withdrawn in the file cancels that patient's pending reminders."""
    records = [patient(f"P-{i}") for i in range(1, 7)]
    path = write(tmp_path / "p.yaml", *records)
    sync_patients(store, shipped, path, NOW)
    write(path, patient("P-1", status="withdrawn"), *records[1:])
    report = sync_patients(store, shipped, path, NOW)
    assert report.withdrawn == ["P-1"]
    assert {e.status for e in timeline(store, "P-1")} == {"cancelled"}


def test_paused_patient_is_held_and_resumes(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A paused patient's reminders are not claimable; set active again, they are."""
    path = write(tmp_path / "p.yaml", patient("P-1", status="paused"))
    sync_patients(store, shipped, path, NOW)
    due = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # day 1, 10:30 New York
    with store.write() as tx:
        assert tx.outbox.claim_due(due, "t", due + timedelta(minutes=5), 100) == []
    write(path, patient("P-1"))
    sync_patients(store, shipped, path, NOW)
    with store.write() as tx:
        claimed = tx.outbox.claim_due(due, "t", due + timedelta(minutes=5), 100)
    assert {c.milestone for c in claimed} == {"crutches-toe-touch"}


def test_invalid_record_leaves_stored_enrollment_untouched(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A record that fails validation is reported; its stored enrollment and reminders stay as they were."""
    path = write(tmp_path / "p.yaml", patient("P-1"), patient("P-2"))
    sync_patients(store, shipped, path, NOW)
    before = timeline(store, "P-1")
    with store.read() as tx:
        enrollment_before = tx.views.enrollment("P-1")
    write(
        path,
        patient("P-1", surgery_date="2026-13-45", phone="not a phone"),
        patient("P-2", first_name="Jo"),
    )
    report = sync_patients(store, shipped, path, NOW)
    assert {(p.patient_id, p.field) for p in report.problems} == {
        ("P-1", "surgery_date"),
        ("P-1", "phone"),
    }
    assert all("patients[0] id=P-1" in str(p) for p in report.problems)
    assert report.updated == ["P-2"]
    assert report.withdrawn == []
    assert timeline(store, "P-1") == before
    with store.read() as tx:
        assert tx.views.enrollment("P-1") == enrollment_before


def test_mass_withdraw_guard_refuses_and_changes_nothing(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A sync withdrawing more than 20% of active patients refuses without force and writes nothing."""
    records = [patient(f"P-{i}") for i in range(1, 11)]
    path = write(tmp_path / "p.yaml", *records)
    sync_patients(store, shipped, path, NOW)
    write(path, *records[:7])  # 3 of 10 removed: 30%
    with pytest.raises(SyncRefused, match="--force"):
        sync_patients(store, shipped, path, NOW)
    with store.read() as tx:
        assert {e.status for e in tx.views.enrollments()} == {"active"}
    report = sync_patients(store, shipped, path, NOW, force=True)
    assert sorted(report.withdrawn) == ["P-10", "P-8", "P-9"]


def test_mass_withdraw_guard_allows_up_to_twenty_percent(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """Withdrawing exactly 20% of active patients goes through without force."""
    records = [patient(f"P-{i}") for i in range(1, 11)]
    path = write(tmp_path / "p.yaml", *records)
    sync_patients(store, shipped, path, NOW)
    write(path, *records[:8])
    assert sorted(sync_patients(store, shipped, path, NOW).withdrawn) == ["P-10", "P-9"]


def test_unreadable_patients_file_changes_nothing(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A patients file that is not valid YAML raises and leaves every enrollment as it was."""
    path = write(tmp_path / "p.yaml", patient("P-1"))
    sync_patients(store, shipped, path, NOW)
    path.write_text("patients: [\n  - id: P-1\n    first_name: [unclosed\n")
    with pytest.raises(PatientFileError, match=r"p\.yaml"):
        sync_patients(store, shipped, path, NOW)
    with store.read() as tx:
        assert tx.views.enrollment("P-1").status == "active"


def test_schedule_change_replans_everyone(store: Store, shipped: Schedules, tmp_path: Path) -> None:
    """An edited schedules.yaml re-plans every enrolled patient: moved milestones move, removed ones are cancelled.

    Catches: a schedule change that re-validates records but never moves or cancels a reminder.
    """
    path = write(tmp_path / "p.yaml", patient("P-1"), patient("P-2"))
    sync_patients(store, shipped, path, NOW)
    before = {pid: by_key(timeline(store, pid)) for pid in ("P-1", "P-2")}
    doc = yaml.safe_load((REPO / "schedules.yaml").read_text(encoding="utf-8"))
    milestones = doc["protocols"]["proximal-hamstring-repair"]["milestones"]
    moved = next(m for m in milestones if m["id"] == "brace-removal")
    assert moved["at"] == "week 6"
    moved["at"] = "week 7"
    milestones.remove(next(m for m in milestones if m["id"] == "protect-hamstring"))

    report = sync_patients(store, make_schedules(doc), path, NOW)

    assert report.unchanged == 0
    assert sorted(report.updated) == ["P-1", "P-2"]
    week7 = datetime.combine(date(2026, 11, 24) + timedelta(weeks=7), time(10), NEW_YORK)
    for pid in ("P-1", "P-2"):
        after = by_key(timeline(store, pid))
        assert after.keys() == before[pid].keys()
        for key, e in after.items():
            old = before[pid][key]
            if key[0] == "brace-removal":
                assert (e.status, e.due_at) == ("planned", week7.astimezone(UTC))
            elif key[0] == "protect-hamstring":
                assert (old.status, e.status, e.due_at) == ("planned", "cancelled", old.due_at)
            else:
                assert e == old
    assert report.reminders["replanned"] == 2 * 2  # brace-removal, SMS and email
    assert report.reminders["cancelled"] == 2 * 2  # protect-hamstring, SMS and email


def test_sync_writes_audit_events(store: Store, shipped: Schedules, tmp_path: Path) -> None:
    """Enrolment and withdrawal leave audit records without contact details."""
    records = [patient(f"P-{i}") for i in range(1, 6)]
    path = write(tmp_path / "p.yaml", *records)
    sync_patients(store, shipped, path, NOW)
    write(path, *records[1:])
    sync_patients(store, shipped, path, NOW)
    with store.read() as tx:
        events = tx.views.audit_events("P-1")
        everything = tx.views.audit_events()
    assert [e["kind"] for e in events] == ["enrollment.created", "enrollment.withdrawn"]
    dumped = repr(everything)
    assert "example.com" not in dumped
    assert "555" not in dumped


def test_duplicate_of_an_unchanged_record_rejects_both_and_keeps_the_stored_one(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """An enrolled record copied twice into the file is reported at both places and left as stored."""
    path = write(tmp_path / "p.yaml", patient("P-1"), patient("P-2"))
    sync_patients(store, shipped, path, NOW)
    before = timeline(store, "P-1")
    write(path, patient("P-1"), patient("P-2"), patient("P-1", first_name="Jo"))
    report = sync_patients(store, shipped, path, NOW)
    assert sorted(str(p).split(": ")[1] for p in report.problems) == [
        "patients[0] id=P-1",
        "patients[2] id=P-1",
    ]
    assert report.unchanged == 1  # P-2
    assert report.withdrawn == []
    assert timeline(store, "P-1") == before
