"""Re-planning enrolled patients when schedules.yaml or a patient's record changes.

Each test enrols patients on the small demo protocol of :mod:`reminders.testing`, changes
one thing (a milestone moved, removed or added; channels, attributes or protocol of one
patient), syncs again, and reads back the stored rows: their status, due time and expiry.
Expected due times are computed here from the calendar and the New York clock, not by
the planner. The ``store`` fixture runs every test on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from reminders import testing
from reminders.store import Store, TimelineEntry
from reminders.sync import SyncReport, sync_patients
from reminders.testing import (
    OTHER_PROTOCOL,
    PROTOCOL,
    make_schedules,
    milestone,
    patient_record,
    schedules_doc,
    write_patients,
)

NY = ZoneInfo("America/New_York")
#: 07:00 in New York: before the first reminder of a patient operated on 2026-11-30.
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
#: Surgery date of the patients whose whole plan is still ahead at NOW.
SURGERY = date(2026, 11, 30)
#: Surgery date of a patient whose first weeks are already past at NOW.
EARLY_SURGERY = date(2026, 11, 10)
#: The demo protocol's default expiry (``defaults.expires_after``).
DEFAULT_EXPIRY = timedelta(days=2)

Key = tuple[str, str, int, str]
"""(protocol, milestone, occurrence, channel) of one patient's reminder."""


def record(pid: str, surgery: date = SURGERY, **fields: Any) -> dict[str, Any]:
    """A fictional patient on SMS and email (New York, the clinic's zone)."""
    return patient_record(
        pid,
        email=f"{pid.lower()}@example.com",
        surgery_date=surgery.isoformat(),
        **fields,
    )


def sync(
    store: Store, doc: Mapping[str, Any], path: Path, records: Iterable[Mapping[str, Any]]
) -> SyncReport:
    """Write ``records`` as the patients file and sync it under schedules ``doc`` at NOW."""
    write_patients(path, records)
    return sync_patients(store, make_schedules(doc), path, NOW)


def rows(store: Store, pid: str) -> dict[Key, TimelineEntry]:
    """Every stored reminder of ``pid``, by key."""
    with store.read() as tx:
        return {
            (e.protocol, e.milestone, e.occurrence, e.channel): e for e in tx.views.timeline(pid)
        }


def mark_sent(store: Store, entries: Sequence[TimelineEntry]) -> None:
    """Record the given reminders as sent, as the dispatcher would."""
    assert entries
    testing.mark_sent(store, [e.id for e in entries], NOW)


def local(day: date, at: time) -> datetime:
    """The UTC instant of wall-clock ``at`` on ``day`` in New York."""
    return datetime.combine(day, at, NY).astimezone(UTC)


def without(entries: Mapping[Key, TimelineEntry], name: str) -> dict[Key, dict[str, Any]]:
    """``entries`` minus those of milestone ``name``, as what they say: a late enrollment's
    expired milestones (no row, no id) get an id when a re-plan writes them out as rows."""
    return {k: e.model_dump(exclude={"id"}) for k, e in entries.items() if k[1] != name}


def test_moved_milestone_moves_unsent_reminders_and_keeps_sent_ones(
    store: Store, tmp_path: Path
) -> None:
    """Moving a milestone from week 6 to week 7 moves its unsent reminders a week; sent ones keep their time.

    Catches: a re-plan that leaves unsent reminders at the old due time (or moves sent ones).
    """
    path = tmp_path / "patients.yaml"
    doc = schedules_doc()
    patients = [record("P-1"), record("P-2")]
    sync(store, doc, path, patients)
    key = (PROTOCOL, "brace-off", 1, "sms")
    mark_sent(store, [rows(store, "P-1")[key]])
    before = {pid: rows(store, pid) for pid in ("P-1", "P-2")}
    week6 = local(SURGERY + timedelta(weeks=6), time(18, 30))
    week7 = local(SURGERY + timedelta(weeks=7), time(18, 30))
    assert before["P-2"][key].due_at == week6

    milestone(doc, 2)["at"] = "week 7"
    report = sync(store, doc, path, patients)

    after = {pid: rows(store, pid) for pid in ("P-1", "P-2")}
    sent = after["P-1"][key]
    assert (sent.status, sent.due_at, sent.attempts) == ("sent", week6, 1)
    moved = after["P-2"][key]
    assert (moved.status, moved.due_at, moved.expires_at) == (
        "planned",
        week7,
        week7 + DEFAULT_EXPIRY,
    )
    for pid in ("P-1", "P-2"):
        assert after[pid].keys() == before[pid].keys()
        assert without(after[pid], "brace-off") == without(before[pid], "brace-off")
    assert report.reminders["replanned"] == 1
    assert report.reminders["cancelled"] == 0


def test_removed_milestone_cancels_pending_reminders_and_keeps_history(
    store: Store, tmp_path: Path
) -> None:
    """Removing a milestone cancels its planned reminders for everyone; sent and expired ones stay.

    Catches: sync that never cancels reminders dropped from the plan.
    """
    path = tmp_path / "patients.yaml"
    doc = schedules_doc()
    patients = [record("P-1"), record("P-2"), record("P-3", EARLY_SURGERY)]
    sync(store, doc, path, patients)
    first_week = [e for k, e in rows(store, "P-1").items() if k[1:3] == ("weekly-check", 1)]
    mark_sent(store, first_week)
    before = {pid: rows(store, pid) for pid in ("P-1", "P-2", "P-3")}

    doc["protocols"][PROTOCOL]["milestones"].pop(1)  # weekly-check, weeks 1-5
    report = sync(store, doc, path, patients)

    after = {pid: rows(store, pid) for pid in ("P-1", "P-2", "P-3")}
    expected = {
        # P-1: week 1 went out on both channels, weeks 2-5 were still planned
        "P-1": {1: "sent", 2: "cancelled", 3: "cancelled", 4: "cancelled", 5: "cancelled"},
        "P-2": {1: "cancelled", 2: "cancelled", 3: "cancelled", 4: "cancelled", 5: "cancelled"},
        # P-3 (operated 2026-11-10): weeks 1 and 2 had expired by NOW
        "P-3": {1: "expired", 2: "expired", 3: "cancelled", 4: "cancelled", 5: "cancelled"},
    }
    for pid, statuses in expected.items():
        weekly = {k: e for k, e in after[pid].items() if k[1] == "weekly-check"}
        assert len(weekly) == 10
        for (_, _, occurrence, _), e in weekly.items():
            assert e.status == statuses[occurrence], (pid, occurrence, e.channel)
            assert e.due_at == before[pid][e.protocol, e.milestone, occurrence, e.channel].due_at
        assert without(after[pid], "weekly-check") == without(before[pid], "weekly-check")
    assert report.reminders["cancelled"] == 2 * 4 + 2 * 5 + 2 * 3
    week2 = local(SURGERY + timedelta(weeks=2), time(10))
    with store.write() as tx:
        claimed = tx.outbox.claim_due(
            week2 + timedelta(minutes=1), "t", week2 + timedelta(hours=1), 100
        )
    assert not [c for c in claimed if c.milestone == "weekly-check"]


def test_added_milestone_is_planned_for_everyone_and_expired_where_past(
    store: Store, tmp_path: Path
) -> None:
    """A milestone added to the protocol is planned for every enrolled patient, expired for those already past it.

    Catches: a re-plan that never inserts reminders for a new milestone, or plans past ones as sendable.
    """
    path = tmp_path / "patients.yaml"
    doc = schedules_doc()
    patients = [record("P-1"), record("P-3", EARLY_SURGERY)]
    sync(store, doc, path, patients)
    before = {pid: rows(store, pid) for pid in ("P-1", "P-3")}

    doc["protocols"][PROTOCOL]["milestones"].insert(2, {"id": "week-two-call", "at": "week 2"})
    report = sync(store, doc, path, patients)

    for pid, surgery, status in (("P-1", SURGERY, "planned"), ("P-3", EARLY_SURGERY, "expired")):
        after = rows(store, pid)
        due = local(surgery + timedelta(weeks=2), time(10))
        for channel in ("sms", "email"):
            added = after[PROTOCOL, "week-two-call", 1, channel]
            assert (added.status, added.due_at, added.expires_at, added.template) == (
                status,
                due,
                due + DEFAULT_EXPIRY,
                "week-two-call",
            ), (pid, channel)
        assert without(after, "week-two-call") == without(before[pid], "week-two-call")
    assert (report.reminders["planned"], report.reminders["expired"]) == (2, 2)


def test_dropped_email_channel_cancels_pending_email_and_keeps_sms(
    store: Store, tmp_path: Path
) -> None:
    """A patient whose channels narrow from SMS and email to SMS has pending email cancelled; sent email and all SMS stay.

    Catches: sync that keeps planned email reminders of a patient who no longer takes email.
    """
    path = tmp_path / "patients.yaml"
    doc = schedules_doc()
    sync(store, doc, path, [record("P-1")])
    mark_sent(store, [rows(store, "P-1")[PROTOCOL, "day-one", 1, "email"]])
    before = rows(store, "P-1")

    report = sync(store, doc, path, [record("P-1", channels=["sms"])])

    after = rows(store, "P-1")
    assert after.keys() == before.keys()
    email = {k: e for k, e in after.items() if k[3] == "email"}
    assert email[PROTOCOL, "day-one", 1, "email"].status == "sent"
    pending = {k for k, e in email.items() if k[1] != "day-one"}
    assert len(pending) == 5  # weekly-check, weeks 1-5 (brace-off is SMS only)
    assert {email[k].status for k in pending} == {"cancelled"}
    assert {k: e for k, e in after.items() if k[3] == "sms"} == {
        k: e for k, e in before.items() if k[3] == "sms"
    }
    assert report.reminders["cancelled"] == len(pending)


def test_narrowed_attributes_cancel_a_milestone_that_no_longer_applies(
    store: Store, tmp_path: Path
) -> None:
    """A patient who loses the attribute a `when:` milestone needs has that milestone's reminders cancelled.

    Catches: sync that keeps reminders of a conditional milestone after the condition stops holding.
    """
    path = tmp_path / "patients.yaml"
    doc = schedules_doc()
    sync(store, doc, path, [record("P-1", attributes={"goal": "sport"})])
    before = rows(store, "P-1")
    review = {k for k in before if k[1] == "sport-review"}
    assert {before[k].status for k in review} == {"planned"}
    assert len(review) == 2

    report = sync(store, doc, path, [record("P-1", attributes={"goal": "walking"})])

    after = rows(store, "P-1")
    assert {after[k].status for k in review} == {"cancelled"}
    assert {after[k].due_at for k in review} == {before[k].due_at for k in review}
    assert without(after, "sport-review") == without(before, "sport-review")
    assert report.reminders["cancelled"] == 2


def test_protocol_change_cancels_the_old_plan_and_plans_the_new_one(
    store: Store, tmp_path: Path
) -> None:
    """A patient moved to another protocol has the old protocol's pending reminders cancelled and the new one planned.

    Catches: sync that leaves the old protocol's reminders planned beside the new protocol's.
    """
    path = tmp_path / "patients.yaml"
    doc = schedules_doc()
    sync(store, doc, path, [record("P-1")])
    sent_key = (PROTOCOL, "day-one", 1, "sms")
    mark_sent(store, [rows(store, "P-1")[sent_key]])
    before = rows(store, "P-1")

    sync(store, doc, path, [record("P-1", protocol=OTHER_PROTOCOL)])

    after = rows(store, "P-1")
    old = {k: e for k, e in after.items() if k[0] == PROTOCOL}
    assert old.keys() == before.keys()
    assert old.pop(sent_key).status == "sent"
    assert {e.status for e in old.values()} == {"cancelled"}
    new = {k: e for k, e in after.items() if k[0] == OTHER_PROTOCOL}
    day1 = local(SURGERY + timedelta(days=1), time(10))
    assert {k: (e.status, e.due_at) for k, e in new.items()} == {
        (OTHER_PROTOCOL, "start", 1, "sms"): ("planned", day1),
        (OTHER_PROTOCOL, "start", 1, "email"): ("planned", day1),
    }
