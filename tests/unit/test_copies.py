"""Copies of advice, with no database: planned again after a postponed surgery, or resent.

The sync's pure diff is fed stored reminders as plain values: an original sent on some
day, copies planned or sent for an earlier surgery date, a copy a coordinator resent.
The demo protocol's ``day-one`` milestone is due at 10:00 in New York on day 1.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from reminders.copies import base_occurrence, copy_occurrence, copy_round, resend_slot
from reminders.lifecycle import ReminderStatus
from reminders.planning import resolve_local
from reminders.records import RawRecord
from reminders.store import StoredEnrollment, StoredReminder
from reminders.sync import SyncPlan, diff, select_records
from reminders.testing import PROTOCOL, make_schedules, patient_record
from reminders.validation import validate_records

NY = ZoneInfo("America/New_York")
SCHEDULES = make_schedules()
DAY_ONE = SCHEDULES.protocols[PROTOCOL].milestones[0]
#: The first surgery date; the day-1 advice went out on 2026-11-21 at 10:00 in New York.
SURGERY = date(2026, 11, 20)


def day_one_due(surgery: date) -> datetime:
    """10:00 in New York the day after ``surgery`` (UTC)."""
    return resolve_local(surgery + timedelta(days=1), DAY_ONE.send_time, NY)


def reminder(
    rid: int,
    occurrence: int,
    status: str,
    surgery: date,
    *,
    sent: bool = False,
    resent: bool = False,
) -> StoredReminder:
    """A stored day-one SMS planned for ``surgery`` (and sent at its due time if ``sent``)."""
    due = day_one_due(surgery)
    return StoredReminder(
        rid,
        ("P-1", PROTOCOL, "day-one", occurrence, "sms"),
        status,
        due,
        due + DAY_ONE.expires_after,
        "day-one",
        due if sent else None,
        resent,
    )


def sync_to(surgery: date, *stored: StoredReminder, now: datetime, **fields: object) -> SyncPlan:
    """The diff of a sync at ``now`` whose record has ``surgery``, against ``stored``."""
    record = RawRecord(
        "patients[0]", patient_record("P-1", surgery_date=surgery.isoformat(), **fields)
    )
    known = {"P-1": StoredEnrollment("P-1", "old digest", "active")}
    selection = select_records([record], known, SCHEDULES.fingerprint)
    checked = validate_records(Path("patients.yaml"), selection.to_check, SCHEDULES)
    return diff(
        known,
        selection,
        checked,
        {r.key: r for r in stored},
        schedules=SCHEDULES,
        now=now,
        removed=[],
    )


def copies(plan: SyncPlan) -> list[tuple[int, datetime, str]]:
    """(occurrence, due, status) of every day-one copy the plan inserts."""
    return [
        (s[2], s[5], s[7])
        for _, slots in plan.inserts
        for s in slots
        if s[1] == "day-one" and s[2] > 1
    ]


def test_a_copy_is_numbered_beyond_the_protocol_and_names_its_original() -> None:
    """Copy 1 of occurrence 3 is 1003, copy 2 is 2003; both stand for occurrence 3."""
    assert [copy_occurrence(3, 1), copy_occurrence(1003, 2)] == [1003, 2003]
    assert [base_occurrence(n) for n in (3, 1003, 2003, 999)] == [3, 3, 3, 999]
    assert [copy_round(n) for n in (1, 1000, 1001, 2001)] == [0, 0, 1, 2]


def test_advice_sent_before_a_postponed_surgery_is_planned_again_for_the_new_date() -> None:
    """Day-1 advice sent on 11-21, surgery moved to 11-27: a copy (1001) is due on 11-28; the sent one stays.

    Catches: a postponement after which the day-1 advice, received before the operation,
    is never sent again (the sent reminder is history and is skipped).
    """
    sent = reminder(1, 1, ReminderStatus.SENT, SURGERY, sent=True)
    plan = sync_to(date(2026, 11, 27), sent, now=datetime(2026, 11, 23, 12, tzinfo=UTC))
    assert copies(plan) == [(1001, day_one_due(date(2026, 11, 27)), ReminderStatus.PLANNED)]
    assert plan.replans == []
    assert plan.dropped == []
    assert plan.report.reminders["planned_again"] == 1
    [event] = [e for e in plan.audit if e["kind"] == "reminder.planned_again"]
    assert event["detail"] == {
        "milestone": "day-one",
        "occurrence": 1001,
        "repeats": 1,
        "channel": "sms",
        "reason": "sent before the surgery date",
    }


def test_advice_sent_after_the_surgery_date_is_not_planned_again() -> None:
    """Day-1 advice sent on 11-21, the date corrected to 11-19: it was received after surgery, so no copy.

    Catches: every date change re-sending everything that was sent.
    """
    sent = reminder(1, 1, ReminderStatus.DELIVERED, SURGERY, sent=True)
    plan = sync_to(date(2026, 11, 19), sent, now=datetime(2026, 11, 23, 12, tzinfo=UTC))
    assert copies(plan) == []
    assert plan.report.reminders["planned_again"] == 0


def test_a_planned_copy_follows_a_second_postponement() -> None:
    """The copy planned for 11-28 moves to 12-03 when surgery moves again to 12-02; no second copy."""
    sent = reminder(1, 1, ReminderStatus.SENT, SURGERY, sent=True)
    copy = reminder(2, 1001, ReminderStatus.PLANNED, date(2026, 11, 27))
    plan = sync_to(date(2026, 12, 2), sent, copy, now=datetime(2026, 11, 25, 12, tzinfo=UTC))
    assert copies(plan) == []
    assert [(r["id"], r["due_at"]) for r in plan.replans] == [(2, day_one_due(date(2026, 12, 2)))]


def test_a_copy_received_before_a_second_postponement_is_planned_once_more() -> None:
    """Original and copy both went out before the new date 12-09: copy 2001 is planned for 12-10."""
    sent = reminder(1, 1, ReminderStatus.SENT, SURGERY, sent=True)
    copy = reminder(2, 1001, ReminderStatus.SENT, date(2026, 11, 27), sent=True)
    plan = sync_to(date(2026, 12, 9), sent, copy, now=datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert copies(plan) == [(2001, day_one_due(date(2026, 12, 9)), ReminderStatus.PLANNED)]


def test_a_pending_copy_is_cancelled_when_the_date_moves_back() -> None:
    """Surgery back on 11-20 after a postponement: the advice received on 11-21 holds, the copy for 11-28 is cancelled."""
    sent = reminder(1, 1, ReminderStatus.SENT, SURGERY, sent=True)
    copy = reminder(2, 1001, ReminderStatus.PLANNED, date(2026, 11, 27))
    plan = sync_to(SURGERY, sent, copy, now=datetime(2026, 11, 23, 12, tzinfo=UTC))
    assert plan.dropped == [2]
    assert copies(plan) == []
    assert plan.replans == []


def test_a_resent_copy_is_left_alone_and_keeps_its_number() -> None:
    """A coordinator's pending resend (1001) survives an unrelated change; a postponement then plans 2001.

    Catches: a sync that re-times or cancels a copy a coordinator asked for.
    """
    sent = reminder(1, 1, ReminderStatus.SENT, SURGERY, sent=True)
    resent = reminder(2, 1001, ReminderStatus.PLANNED, date(2026, 11, 22), resent=True)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    renamed = sync_to(SURGERY, sent, resent, now=now, first_name="Dani")
    assert (renamed.replans, renamed.dropped, copies(renamed)) == ([], [], [])
    postponed = sync_to(date(2026, 11, 27), sent, resent, now=now)
    assert [c[0] for c in copies(postponed)] == [2001]
    assert postponed.replans == []
    assert postponed.dropped == []


def test_copies_of_a_reminder_that_left_the_plan_are_dropped() -> None:
    """A patient moved from SMS to email: the pending SMS copy is listed for cancelling with its original."""
    sent = reminder(1, 1, ReminderStatus.SENT, SURGERY, sent=True)
    copy = reminder(2, 1001, ReminderStatus.PLANNED, date(2026, 11, 27))
    plan = sync_to(
        date(2026, 11, 27),
        sent,
        copy,
        now=datetime(2026, 11, 23, 12, tzinfo=UTC),
        email="p-1@example.com",
        channels=["email"],
    )
    assert sorted(plan.dropped) == [1, 2]


def test_a_resend_is_due_now_or_when_the_window_opens_and_takes_the_next_number() -> None:
    """Resent at 21:00 in New York (window closed), the copy after 1001 is 2001, due 09:00 next day."""
    original = reminder(1, 1, ReminderStatus.SENT, SURGERY, sent=True)
    earlier = reminder(2, 1001, ReminderStatus.SENT, SURGERY, resent=True)
    night = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 21:00 on 11-22 in New York
    slot = resend_slot(
        original,
        [original, earlier],
        DAY_ONE,
        now=night,
        zone=NY,
        window=SCHEDULES.send_window,
    )
    opens = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 in New York
    assert slot == (
        PROTOCOL,
        "day-one",
        2001,
        "sms",
        "day-one",
        opens,
        opens + DAY_ONE.expires_after,
        ReminderStatus.PLANNED,
    )
