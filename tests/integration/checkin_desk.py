"""A clinic desk for check-in tests: the shipped protocol, enrolled patients, memory channels.

Patients (fictional): P-1 English, SMS and email, New York; P-2 Spanish, SMS only,
Chicago; P-3 English, email only. Surgery on 2026-11-20: the first pain check-in is due
on day 4 at 18:00 local time (23:00 UTC in New York), the brace check-in on day 5.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reminders.channels.memory import MemoryChannel
from reminders.dispatch import Dispatcher, TickReport
from reminders.inbound import Handled, Text, receive
from reminders.models import Schedules
from reminders.store import Store, TimelineEntry
from reminders.sync import sync_patients
from reminders.templates import Templates
from reminders.testing import make_dispatcher, patient_record, write_patients

SURGERY = "2026-11-20"
ENROLLED = datetime(2026, 11, 20, 12, tzinfo=UTC)
#: Day 4, 19:05 in New York and 18:05 in Chicago: the first pain check-ins have gone out.
ASKED = datetime(2026, 11, 25, 0, 5, tzinfo=UTC)
PHONES = {"P-1": "+12015550123", "P-2": "+12015550142"}
PATIENTS: tuple[dict[str, Any], ...] = (
    patient_record(
        "P-1",
        first_name="Dana",
        last_name="Reyes",
        phone=PHONES["P-1"],
        email="dana@example.com",
        surgery_date=SURGERY,
        timezone="America/New_York",
        language="en",
        channels=["sms", "email"],
    ),
    patient_record(
        "P-2",
        first_name="Lucia",
        last_name="Ortega",
        phone=PHONES["P-2"],
        email=None,
        surgery_date=SURGERY,
        timezone="America/Chicago",
        language="es",
        channels=["sms"],
    ),
    patient_record(
        "P-3",
        first_name="Sam",
        last_name="Okafor",
        phone=None,
        email="sam@example.com",
        surgery_date=SURGERY,
        timezone="America/New_York",
        language="en",
        channels=["email"],
    ),
)
#: What no notice to the care team may carry.
PRIVATE = ("Dana", "Reyes", "Lucia", "Ortega", "Sam", "Okafor", "hamstring", *PHONES.values())


@dataclass
class Desk:
    """The store, the shipped schedules and what each channel delivered."""

    store: Store
    schedules: Schedules
    sms: MemoryChannel
    email: MemoryChannel
    dispatcher: Dispatcher
    sids: int = 0

    def tick(self, at: datetime) -> TickReport:
        """Deliver what is due at ``at`` (and sweep check-ins and alerts)."""
        return self.dispatcher.tick(at)

    def reply(self, patient: str, body: str, at: datetime, sid: str | None = None) -> Handled:
        """A text from ``patient``'s phone, handled as the webhook handles it."""
        if sid is None:
            self.sids += 1
            sid = f"SM{self.sids:032x}"
        return receive(self.store, self.schedules, Text(PHONES[patient], body, sid, at))

    def sent_to(self, address: str) -> list[str]:
        """Texts (SMS) or subjects and texts (email) delivered to ``address``, in order."""
        return [
            f"{m.subject or ''}\n{m.text}".strip()
            for m in (*self.sms.sent, *self.email.sent)
            if m.to == address
        ]

    def notices(self) -> list[TimelineEntry]:
        """Every notice to the care team (queued or sent)."""
        with self.store.read() as tx:
            return [e for e in tx.views.timeline(notices=True) if e.kind == "notice"]

    def responses(self, patient: str) -> list[TimelineEntry]:
        """Every response queued to ``patient``."""
        with self.store.read() as tx:
            return [e for e in tx.views.timeline(patient) if e.kind == "response"]

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of ``table``, for before/after comparisons."""
        with self.store.read() as tx:
            query = sa.text(f"SELECT * FROM {table} ORDER BY id")  # noqa: S608  # the test's own names
            return [tuple(r) for r in tx.conn.execute(query)]

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """What a repeated text must not change."""
        tables = ("reminders", "check_ins", "alerts", "inbound_messages", "audit_events")
        return {t: self.rows(t) for t in tables}


def open_desk(
    store: Store, schedules: Schedules, templates: Templates, tmp_path: Path
) -> Iterator[Desk]:
    """Enrol the patients, send the day-4 pain check-in, and hand the desk over."""
    sync_patients(store, schedules, write_patients(tmp_path / "patients.yaml", PATIENTS), ENROLLED)
    sms, email = MemoryChannel("sms"), MemoryChannel("email")
    dispatcher = make_dispatcher(
        store,
        schedules,
        templates,
        {"sms": sms, "email": email},
        owner="test",
        rng=random.Random(1),
    )
    desk = Desk(store, schedules, sms, email, dispatcher)
    desk.tick(ASKED)  # days 1-3 have expired; the day-4 pain check goes out now
    yield desk
