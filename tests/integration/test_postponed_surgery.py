"""A surgery postponed after advice went out, and a coordinator's resend, on the real store.

The shipped protocol, the in-memory channels and a real SQLite and PostgreSQL outbox:
advice that reached the patient before the new surgery date goes out again after it,
as new reminders, with what was sent kept in the history; a copy a coordinator resent
on purpose is left alone by later syncs.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from reminders.channels.memory import MemoryChannel
from reminders.copies import chains, resend_slot
from reminders.models import Schedules
from reminders.store import Store
from reminders.store.enrollments import RESENT
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher
from tests.integration.test_sync import patient, timeline, write

NY = ZoneInfo("America/New_York")
ENROLLED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FIRST_DATE, NEW_DATE = date(2026, 11, 24), date(2026, 12, 1)
EARLY = ("crutches-toe-touch", "protect-hamstring")  # days 1 and 2


def at(day: date, hour: int = 10, minute: int = 30) -> datetime:
    """Local wall-clock time in New York on ``day``, as UTC."""
    return datetime.combine(day, time(hour, minute), NY).astimezone(UTC)


def test_advice_sent_before_a_postponed_surgery_goes_out_again_after_it(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """Day-1 and day-2 advice sent before the surgery moved a week later go out again on the new days 1 and 2; the sent ones stay.

    Catches: "day 2" advice received before the operation and never after (sent
    reminders are history, and a re-plan only moves unsent ones).
    """
    path = write(tmp_path / "p.yaml", patient("P-1", surgery_date=FIRST_DATE.isoformat()))
    sync_patients(store, shipped, path, ENROLLED)
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    dispatcher = make_dispatcher(
        store, shipped, templates, {"sms": sms, "email": email}, owner="t", rng=random.Random(1)
    )
    for day in (1, 2):
        dispatcher.tick(at(FIRST_DATE + timedelta(days=day)))
    before = {(e.milestone, e.occurrence, e.channel): e for e in timeline(store, "P-1")}

    write(path, patient("P-1", surgery_date=NEW_DATE.isoformat()))
    report = sync_patients(store, shipped, path, at(FIRST_DATE + timedelta(days=3)))
    for day in (1, 2):
        dispatcher.tick(at(NEW_DATE + timedelta(days=day)))
    after = {(e.milestone, e.occurrence, e.channel): e for e in timeline(store, "P-1")}

    assert report.reminders["planned_again"] == 4
    for milestone in EARLY:
        for channel in ("sms", "email"):
            original, copy = after[milestone, 1, channel], after[milestone, 1001, channel]
            assert (original.status, original.due_at) == (
                "sent",
                before[milestone, 1, channel].due_at,
            )
            assert copy.status == "sent"
            assert (
                copy.due_at.astimezone(NY).date() - NEW_DATE
                == original.due_at.astimezone(NY).date() - FIRST_DATE
            )
    sent = [re.findall(r"^<reminder\.\d+\.(.+)\.(\d+)@", m.message_id)[0] for m in sms.sent]
    assert sent == [(m, "1") for m in EARLY] + [(m, "1001") for m in EARLY]
    assert sms.sent[2].text == sms.sent[0].text.replace(" Reply STOP to opt out.", "")
    with store.read() as tx:
        events = [e for e in tx.views.audit_events("P-1") if e["kind"] == "reminder.planned_again"]
    assert len(events) == 4


def test_a_resent_copy_is_left_alone_by_a_later_sync(
    store: Store, shipped: Schedules, tmp_path: Path
) -> None:
    """A pending copy recorded as resent keeps its due time and status through a sync of a changed record.

    Catches: the sync treating a coordinator's resend as a stale copy of advice the
    patient already had (and cancelling it), because the store does not say it was resent.
    """
    path = write(tmp_path / "p.yaml", patient("P-1", surgery_date=FIRST_DATE.isoformat()))
    sync_patients(store, shipped, path, ENROLLED)
    day1 = at(FIRST_DATE + timedelta(days=1))
    with store.write() as tx:
        rows = tx.enrollments.reminders_of(["P-1"])
        original = next(r for r in rows if r.key[2:] == ("crutches-toe-touch", 1, "sms"))
        tx.outbox.record_sent(original.id, "SM1", day1)
    now = day1 + timedelta(days=1)
    with store.write() as tx:
        stored = chains(tx.enrollments.reminders_of(["P-1"]))
        milestone = shipped.protocols["proximal-hamstring-repair"].milestones[0]
        slot = resend_slot(
            original,
            stored[original.key],
            milestone,
            now=now,
            zone=NY,
            window=shipped.send_window,
        )
        rid = tx.enrollments.insert_one("P-1", slot, now)
        tx.audit([{"at": now, "kind": RESENT, "patient_id": "P-1", "reminder_id": rid}])

    write(path, patient("P-1", first_name="Dani", surgery_date=FIRST_DATE.isoformat()))
    sync_patients(store, shipped, path, now + timedelta(minutes=5))
    [copy] = [e for e in timeline(store, "P-1") if e.id == rid]
    assert (copy.occurrence, copy.status, copy.due_at) == (1001, "planned", now)
