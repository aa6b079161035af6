"""The sync's pure steps, with no database: selecting records, the withdraw guard, the diff.

``select_records`` + ``validate_records`` + ``guard`` + ``diff`` decide every change a
sync writes; these tests feed them stored enrollments and reminders as plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from reminders.errors import SyncRefused
from reminders.lifecycle import ReminderStatus
from reminders.records import RawRecord
from reminders.store import StoredEnrollment, StoredReminder
from reminders.sync import Selection, SyncPlan, diff, select_records
from reminders.testing import PROTOCOL, make_schedules, patient_record
from reminders.validation import validate_records
from reminders.withdraw_guard import guard

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FILE = Path("patients.yaml")
SCHEDULES = make_schedules()


def records(*fields: dict[str, object]) -> list[RawRecord]:
    """Raw records as a patients file would hold them."""
    return [RawRecord(f"patients[{i}]", f) for i, f in enumerate(fields)]


def stored(*ids: str, status: str = "active", digest: str = "old") -> dict[str, StoredEnrollment]:
    """Stored enrollments with these ids."""
    return {pid: StoredEnrollment(pid, digest, status) for pid in ids}


def plan_for(
    file: list[RawRecord],
    known: dict[str, StoredEnrollment],
    existing: Sequence[StoredReminder] = (),
    *,
    force: bool = False,
) -> SyncPlan:
    """Run the pure steps of a sync on ``file`` against ``known``."""
    selection = select_records(file, known, SCHEDULES.fingerprint)
    checked = validate_records(FILE, selection.to_check, SCHEDULES)
    removed = guard(known, checked, selection.in_file, force=force, path=FILE)
    return diff(
        known,
        selection,
        checked,
        {r.key: r for r in existing},
        schedules=SCHEDULES,
        now=NOW,
        removed=removed,
    )


def test_unchanged_records_are_dropped_before_validation() -> None:
    """A record whose digest matches the stored one is counted unchanged and never validated."""
    file = records(patient_record("P-1"), patient_record("P-2", first_name="Luis"))
    first = select_records(file, {}, SCHEDULES.fingerprint)
    known = {pid: StoredEnrollment(pid, first.digests[pid], "active") for pid in ("P-1", "P-2")}
    file[1] = RawRecord("patients[1]", patient_record("P-2", first_name="Luiz"))
    again = select_records(file, known, SCHEDULES.fingerprint)
    assert (again.unchanged, [r.patient_id for r in again.to_check]) == (1, ["P-2"])


def test_every_copy_of_a_duplicated_id_is_checked_even_if_one_is_unchanged() -> None:
    """Two records with one id both come back for validation (and both are rejected)."""
    file = records(patient_record("P-1"))
    digest = select_records(file, {}, SCHEDULES.fingerprint).digests["P-1"]
    twice = records(patient_record("P-1"), patient_record("P-1", first_name="Other"))
    selection = select_records(twice, stored("P-1", digest=digest), SCHEDULES.fingerprint)
    assert selection.unchanged == 0
    assert sorted(r.position for r in selection.to_check) == ["patients[0]", "patients[1]"]


def test_a_new_patient_is_enrolled_with_every_reminder_of_the_plan() -> None:
    """A new record: one enrollment row and a slot per milestone occurrence and channel, the
    ones already expired kept as the late history."""
    plan = plan_for(records(patient_record("P-1", email="p-1@example.com")), {})
    assert plan.report.enrolled == ["P-1"]
    assert [row["patient_id"] for row in plan.new] == ["P-1"]
    [(pid, slots)] = plan.inserts
    [(row, late)] = plan.late
    assert pid == row["patient_id"] == "P-1"
    # Day one expired before the patient was enrolled: the late history, stored apart.
    assert {(s[1], s[7]) for s in late} == {("day-one", "expired")}
    assert {s[7] for s in slots} == {"planned"}
    assert plan.report.reminders == {"expired": len(late), "planned": len(slots)}
    # demo-repair: day-one, weekly-check x5, brace-off (SMS only) on sms+email where they apply
    assert {(s[1], s[2], s[3]) for s in [*late, *slots]} == {
        ("day-one", 1, "sms"),
        ("day-one", 1, "email"),
        *(("weekly-check", n, ch) for n in range(1, 6) for ch in ("sms", "email")),
        ("brace-off", 1, "sms"),
    }


def test_a_changed_date_replans_unsent_reminders_and_keeps_sent_history() -> None:
    """Moving the surgery date re-plans a planned reminder and leaves a sent one alone."""
    old_due = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    existing = [
        StoredReminder(
            1,
            ("P-1", PROTOCOL, "day-one", 1, "sms"),
            "sent",
            old_due,
            old_due + timedelta(days=1),
            "day-one",
        ),
        StoredReminder(
            2,
            ("P-1", PROTOCOL, "weekly-check", 1, "sms"),
            ReminderStatus.PLANNED,
            old_due + timedelta(days=6),
            old_due + timedelta(days=8),
            "weekly-check",
        ),
    ]
    plan = plan_for(
        records(patient_record("P-1", surgery_date="2026-11-24")), stored("P-1"), existing
    )
    assert plan.report.updated == ["P-1"]
    assert [row["id"] for row in plan.replans] == [2]
    assert plan.replans[0]["due_at"].date() == date(2026, 12, 1)
    assert plan.dropped == []


def test_reminders_that_left_the_plan_are_dropped() -> None:
    """A stored reminder the new plan no longer has (email removed) is listed for cancelling."""
    due = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    existing = [
        StoredReminder(
            7, ("P-1", PROTOCOL, "day-one", 1, "email"), ReminderStatus.PLANNED, due, due, "day-one"
        )
    ]
    plan = plan_for(records(patient_record("P-1", channels=["sms"])), stored("P-1"), existing)
    assert plan.dropped == [7]


def test_a_record_set_withdrawn_withdraws_and_plans_nothing() -> None:
    """status: withdrawn in the file: withdrawn, nothing inserted."""
    others = [patient_record(pid) for pid in ("P-2", "P-3", "P-4", "P-5", "P-6")]
    plan = plan_for(
        records(patient_record("P-1", status="withdrawn"), *others),
        stored("P-1", "P-2", "P-3", "P-4", "P-5", "P-6"),
    )
    assert plan.withdrawn == ["P-1"]
    assert "P-1" not in [pid for pid, _ in plan.inserts]


def test_the_guard_refuses_to_withdraw_more_than_a_fifth_of_active_patients() -> None:
    """Removing 2 of 5 active patients (40%) is refused before anything is decided."""
    known = stored("P-1", "P-2", "P-3", "P-4", "P-5")
    file = records(*(patient_record(pid) for pid in ("P-1", "P-2", "P-3")))
    with pytest.raises(SyncRefused, match=r"withdraw 2 of 5 active patients \(40%"):
        plan_for(file, known)


def test_the_refusal_names_every_patient_removed_or_set_withdrawn() -> None:
    """The refusal carries the ids of the removed and the newly withdrawn, sorted, and names them."""
    known = stored("P-1", "P-2", "P-3", "P-4", "P-5")
    file = records(
        *(patient_record(pid) for pid in ("P-2", "P-3", "P-4")),
        patient_record("P-1", status="withdrawn"),
    )
    with pytest.raises(SyncRefused) as refused:
        plan_for(file, known)
    assert (refused.value.withdrawing, refused.value.enrolled) == (["P-1", "P-5"], 5)
    assert "P-1, P-5;" in str(refused.value)


def test_the_guard_allows_a_fifth_and_force_allows_more() -> None:
    """1 of 5 (20%) passes; 2 of 5 passes with force; the removed are withdrawn."""
    known = stored("P-1", "P-2", "P-3", "P-4", "P-5")
    four = records(*(patient_record(pid) for pid in ("P-1", "P-2", "P-3", "P-4")))
    assert plan_for(four, known).removed == ["P-5"]
    three = records(*(patient_record(pid) for pid in ("P-1", "P-2", "P-3")))
    assert plan_for(three, known, force=True).report.withdrawn == ["P-4", "P-5"]


def test_the_guard_counts_patients_set_withdrawn_in_the_file_too() -> None:
    """Setting 2 of 5 active patients withdrawn in the file is a mass withdrawal as well."""
    known = stored("P-1", "P-2", "P-3", "P-4", "P-5")
    file = records(
        *(patient_record(pid) for pid in ("P-1", "P-2", "P-3")),
        patient_record("P-4", status="withdrawn"),
        patient_record("P-5", status="withdrawn"),
    )
    with pytest.raises(SyncRefused):
        plan_for(file, known)


def test_the_guard_counts_paused_patients_on_both_sides_of_its_share() -> None:
    """Emptying a file of 4 active and 1 paused patients is "5 of 5 enrolled (4 active, 1 paused)", 100%, not 125%."""
    known = {**stored("P-1", "P-2", "P-3", "P-4"), **stored("P-5", status="paused")}
    with pytest.raises(
        SyncRefused,
        match=r"withdraw 5 of 5 enrolled patients \(4 active, 1 paused; 100%, more than 20%\)",
    ):
        plan_for(records(), known)


def test_the_guard_protects_a_clinic_whose_patients_are_all_paused() -> None:
    """Emptying a file whose 3 patients are all paused is refused too: paused patients are enrolled."""
    with pytest.raises(SyncRefused, match=r"withdraw 3 of 3 enrolled patients \(3 paused; 100%"):
        plan_for(records(), stored("P-1", "P-2", "P-3", status="paused"))


def test_a_rejected_record_is_neither_changed_nor_withdrawn() -> None:
    """A stored patient whose record is now invalid is left alone, not treated as removed."""
    known = stored("P-1", "P-2")
    file = records(patient_record("P-1"), patient_record("P-2", surgery_date="2026-13-40"))
    plan = plan_for(file, known)
    assert [str(p.patient_id) for p in plan.report.problems] == ["P-2"]
    assert plan.removed == []
    assert [row["patient_id"] for row in plan.changed] == ["P-1"]


def test_selection_is_a_plain_value() -> None:
    """An empty file selects nothing and lists no ids."""
    assert select_records([], stored("P-1"), "salt") == Selection()
