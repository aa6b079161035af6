"""A paused patient on a real outbox: reminders are held, those whose expiry passes are expired, the rest go out on resume."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reminders.channels.memory import MemoryChannel
from reminders.models import Schedules
from reminders.store import Store
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher, patient_record, write_patients

#: Surgery on 2026-11-24 in New York (UTC-5): day 1 (crutches-toe-touch) is due
#: 2026-11-25 15:00 UTC and expires a day later; day 2 (protect-hamstring) is due
#: 2026-11-26 15:00 UTC and expires 2026-11-27 15:00 UTC.
SURGERY = "2026-11-24"
ENROLLED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY1 = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
DAY2 = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
WEEK1 = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def record(status: str) -> dict[str, Any]:
    return patient_record(
        "P-1",
        email="p-1@example.com",
        surgery_date=SURGERY,
        timezone="America/New_York",
        protocol="proximal-hamstring-repair",
        status=status,
    )


def statuses(store: Store) -> dict[tuple[str, int, str], str]:
    with store.read() as tx:
        return {(e.milestone, e.occurrence, e.channel): e.status for e in tx.views.timeline("P-1")}


def sent_milestones(*channels: MemoryChannel) -> list[str]:
    """Milestone ids of every accepted message (the Message-ID names the milestone)."""
    return sorted(m.message_id.split(".")[2] for ch in channels for m in ch.sent)


def test_paused_patient_is_held_expires_what_passes_and_resumes_the_rest(
    store: Store, shipped: Schedules, templates: Templates, tmp_path: Path
) -> None:
    """Paused: nothing is sent; day-1 advice whose expiry passes meanwhile is ``expired``; once active, day 2 goes out.

    Catches: paused reminders sent anyway; reminders of a paused patient left ``planned`` past
    their expiry (and sent late on resume); a pause that cancels instead of holding (nothing on resume).
    """
    path = tmp_path / "patients.yaml"
    write_patients(path, [record("active")])
    sync_patients(store, shipped, path, ENROLLED)
    write_patients(path, [record("paused")])
    assert sync_patients(store, shipped, path, ENROLLED + timedelta(hours=1)).paused == ["P-1"]
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    dispatcher = make_dispatcher(
        store,
        shipped,
        templates,
        {"sms": sms, "email": email},
        owner="test",
        rng=random.Random(1),
    )

    # Paused on day 1: the day-1 reminders are due but held.
    report = dispatcher.tick(DAY1)
    assert (report.counts["sent"], sms.calls, email.calls) == (0, [], [])
    held = statuses(store)
    assert (
        held["crutches-toe-touch", 1, "sms"] == held["crutches-toe-touch", 1, "email"] == "planned"
    )

    # Still paused on day 2: day 1's expiry has passed, so it is expired; day 2 is held.
    dispatcher.tick(DAY2)
    assert (sms.calls, email.calls) == ([], [])
    now = statuses(store)
    assert now["crutches-toe-touch", 1, "sms"] == now["crutches-toe-touch", 1, "email"] == "expired"
    assert now["protect-hamstring", 1, "sms"] == now["protect-hamstring", 1, "email"] == "planned"

    # Active again the same day: day 2 goes out; day 1 stays expired, never sent late.
    write_patients(path, [record("active")])
    assert sync_patients(store, shipped, path, DAY2).updated == ["P-1"]
    assert dispatcher.tick(DAY2 + timedelta(minutes=5)).counts["sent"] == 2
    assert sent_milestones(sms, email) == ["protect-hamstring", "protect-hamstring"]
    after = statuses(store)
    assert (
        after["crutches-toe-touch", 1, "sms"]
        == after["crutches-toe-touch", 1, "email"]
        == "expired"
    )
    assert after["protect-hamstring", 1, "sms"] == after["protect-hamstring", 1, "email"] == "sent"

    # And the protocol carries on: week 1 goes out when due.
    assert dispatcher.tick(WEEK1).counts["sent"] == 2
    assert "crutches-toe-touch" not in sent_milestones(sms, email)
    assert sent_milestones(sms, email).count("brace-crutch-check") == 2
