"""A patient's calendar of milestones, as iCalendar (``reminders calendar``, ``/calendar/{token}.ics``).

One all-day event per milestone occurrence, on the local day its message is due (all
channels of it, and the copies planned again after a postponed surgery, are one event):

* ``UID`` is derived from (patient, protocol, milestone, occurrence) alone, so it never
  changes: a calendar that subscribed updates the event in place;
* ``SEQUENCE`` counts the changes of the occurrence: on each channel, the revisions of its
  reminders (each re-plan and cancellation adds one, :mod:`reminders.store.schema`) plus
  its copies; the largest count is the event's. It rises with every change of date or
  status and only then;
* ``STATUS:CANCELLED`` once every reminder of the occurrence is cancelled (the patient was
  withdrawn, or the milestone left their plan), ``CONFIRMED`` otherwise.

Titles and descriptions name the clinic and the day after the procedure, never the
protocol, the milestone or anything that says the condition: a calendar is seen on
lock screens and shared with family. Built with the ``icalendar`` library; pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Protocol
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from reminders.compose import ClinicPhone
from reminders.copies import base_occurrence, copy_round
from reminders.lifecycle import MessageKind, ReminderStatus
from reminders.models import Clinic, Recipient

#: Namespace of the events' UIDs (a UUID of this project's own).
NAMESPACE: Final = uuid.UUID("6f1c2b1e-3a55-4f0e-9d3c-0c6a1f5e7b21")
#: The events' texts per language; ``{clinic}``, ``{when}`` and ``{phone}`` are filled in.
TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "calendar": "{clinic}: recovery messages",
        "summary": "{clinic}: recovery message ({when})",
        "description": "Your care team sends you a recovery message on this day, by text or "
        "email. Questions, or something feels wrong? Call {clinic} at {phone}.",
        "day": "day {n}",
        "week": "week {n}",
    },
    "es": {
        "calendar": "{clinic}: mensajes de recuperación",
        "summary": "{clinic}: mensaje de recuperación ({when})",
        "description": "Su equipo de atención le envía un mensaje de recuperación este día, "
        "por texto o correo. ¿Dudas, o algo no va bien? Llame a {clinic} al {phone}.",
        "day": "día {n}",
        "week": "semana {n}",
    },
}
#: Used for a language no text is written in.
DEFAULT_LANGUAGE: Final = "en"
#: How often a subscribed calendar should fetch the feed again.
REFRESH: Final = timedelta(hours=12)


class Row(Protocol):
    """A stored reminder, as far as the calendar reads it."""

    @property
    def protocol(self) -> str:
        """Protocol id."""

    @property
    def milestone(self) -> str:
        """Milestone id."""

    @property
    def occurrence(self) -> int:
        """Occurrence (a copy's number for a copy)."""

    @property
    def channel(self) -> str:
        """Channel."""

    @property
    def kind(self) -> str:
        """Reminder, response or notice: only reminders are milestones."""

    @property
    def due_at(self) -> datetime:
        """Due time (UTC)."""

    @property
    def status(self) -> str:
        """Reminder status."""

    @property
    def revision(self) -> int:
        """Re-plans and cancellations so far."""

    @property
    def updated_at(self) -> datetime:
        """Last change (UTC)."""


@dataclass(frozen=True, slots=True)
class MilestoneEvent:
    """One event of the calendar."""

    #: Stable across re-plans and exports.
    uid: str
    #: The local day.
    day: date
    #: Raised on each change.
    sequence: int
    #: Every reminder of the occurrence is cancelled.
    cancelled: bool
    #: Last change of any of its reminders (UTC).
    changed: datetime
    #: Days after the anchor date.
    days: int


def event_uid(patient_id: str, protocol: str, milestone: str, occurrence: int) -> str:
    """The UID of a milestone occurrence's event (a name-based UUID: the id is not readable)."""
    name = f"calendar/{patient_id}/{protocol}/{milestone}/{base_occurrence(occurrence)}"
    return f"{uuid.uuid5(NAMESPACE, name)}@recovery-reminders"


def milestone_events(patient: Recipient, rows: Iterable[Row]) -> list[MilestoneEvent]:
    """One event per milestone occurrence of ``rows`` (one patient's reminders), by day."""
    groups: dict[tuple[str, str, int], list[Row]] = {}
    for row in rows:
        if row.kind != MessageKind.REMINDER:
            continue  # a response to the patient's text, or a notice: no milestone
        key = (row.protocol, row.milestone, base_occurrence(row.occurrence))
        groups.setdefault(key, []).append(row)
    zone = ZoneInfo(patient.timezone)
    events = []
    for (protocol, milestone, occurrence), members in groups.items():
        live = [r for r in members if r.status != ReminderStatus.CANCELLED]
        # The latest round of copies is where the occurrence now stands.
        current = max(live or members, key=lambda r: (copy_round(r.occurrence), r.due_at))
        day = current.due_at.astimezone(zone).date()
        # Each channel's reminders change together; a channel added later is no change.
        changes: dict[str, int] = {}
        for r in members:
            changes[r.channel] = (
                changes.get(r.channel, 0) + r.revision + (1 if copy_round(r.occurrence) else 0)
            )
        events.append(
            MilestoneEvent(
                uid=event_uid(patient.patient_id, protocol, milestone, occurrence),
                day=day,
                sequence=max(changes.values()),
                cancelled=not live,
                changed=max(r.updated_at for r in members).astimezone(UTC),
                days=(day - patient.surgery_date).days,
            )
        )
    events.sort(key=lambda e: (e.day, e.uid))
    return events


def _when(texts: Mapping[str, str], days: int) -> str:
    if days >= 7 and days % 7 == 0:
        return texts["week"].format(n=days // 7)
    return texts["day"].format(n=days)


def calendar(clinic: Clinic, patient: Recipient, rows: Iterable[Row]) -> bytes:
    """The iCalendar document of ``patient``'s milestones, from their stored reminders."""
    texts = TEXTS.get(patient.language, TEXTS[DEFAULT_LANGUAGE])
    phone = ClinicPhone.of(clinic).shown_to(patient)
    cal = Calendar()
    cal.add("prodid", "-//Recovery reminders//Milestones//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", texts["calendar"].format(clinic=clinic.short_name))
    cal.add("x-wr-timezone", patient.timezone)
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT12H")
    for item in milestone_events(patient, rows):
        event = Event()
        event.add("uid", item.uid)
        event.add("dtstamp", item.changed)
        event.add("last-modified", item.changed)
        event.add("dtstart", item.day)
        event.add("dtend", item.day + timedelta(days=1))
        event.add("sequence", item.sequence)
        event.add("status", "CANCELLED" if item.cancelled else "CONFIRMED")
        event.add("transp", "TRANSPARENT")
        when = _when(texts, item.days)
        event.add("summary", texts["summary"].format(clinic=clinic.short_name, when=when))
        event.add("description", texts["description"].format(clinic=clinic.short_name, phone=phone))
        cal.add_component(event)
    ics: bytes = cal.to_ical()
    return ics
