"""Pure protocol math: enrollment + protocol -> reminders with UTC due times.

Nothing here reads the clock, the database or the network; ``now`` is always passed in.

Time rules (SPEC section 6):

* due = anchor date + offset, at the milestone's local send time in the patient's zone;
* a local time that does not exist (a DST gap) moves forward by the gap; an ambiguous one
  (a DST overlap) is the first of the two instants;
* a due time outside the send window moves to the next opening of the window;
* a reminder whose ``expires_at`` has passed is never sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from reminders.lifecycle import ReminderStatus
from reminders.models import Patient, PlannedReminder, Protocol, Schedules, SendWindow

#: One planned occurrence on one channel, shared by every patient whose plan is the same:
#: protocol, milestone, occurrence, channel, template, due_at, expires_at, status.
PlanSlot: TypeAlias = tuple[str, str, int, str, str, datetime, datetime, str]


def resolve_local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock ``at`` on ``day`` in ``zone``.

    ``fold=0`` makes zoneinfo read a skipped time with the offset in force before the
    gap, which lands the same distance past the gap: 02:30 in a 02:00->03:00 gap
    becomes 03:30. In an overlap, ``fold=0`` is the earlier instant.
    """
    return _instant(day, at, zone, fold=0)


def _instant(day: date, at: time, zone: ZoneInfo, fold: int) -> datetime:
    # The fold is set here, not taken from ``at``: a caller's ``time(fold=1)`` must not
    # silently pick the later instant of an overlap.
    return datetime.combine(day, at.replace(fold=fold), tzinfo=zone).astimezone(UTC)


def next_window_open(instant: datetime, zone: ZoneInfo, window: SendWindow) -> datetime:
    """The first window opening at or after ``instant`` (UTC), or ``instant`` if inside ``window``.

    The window opens when the local clock reads ``window.start``: twice on a day whose
    overlap repeats that time, and ``start`` moved forward by the gap on a day that skips it.
    """
    local = instant.astimezone(zone)
    if window.contains(local.time()):
        return instant
    day = local.date()
    for _ in range(4):  # a zone may skip a whole day (Pacific/Apia, 2011-12-30)
        for opening in _openings(day, window.start, zone):
            if opening >= instant and window.contains(opening.astimezone(zone).time()):
                return opening
        day += timedelta(days=1)
    return resolve_local(day, window.start, zone)


def _openings(day: date, start: time, zone: ZoneInfo) -> tuple[datetime, ...]:
    # An overlap reads ``start`` twice; the second reading is still ahead of an instant
    # that falls between the two, so skipping it would delay a reminder by a whole day.
    first = _instant(day, start, zone, fold=0)
    second = _instant(day, start, zone, fold=1)
    if second > first and second.astimezone(zone).time() == start:
        return (first, second)
    return (first,)


def due_at(
    anchor: date, offset_days: int, send_time: time, zone: ZoneInfo, window: SendWindow
) -> datetime:
    """UTC due time of an occurrence ``offset_days`` after ``anchor``, inside the send window."""
    instant = resolve_local(anchor + timedelta(days=offset_days), send_time, zone)
    return next_window_open(instant, zone, window)


def plan(patient: Patient, protocol: Protocol, window: SendWindow) -> list[PlannedReminder]:
    """Every reminder ``patient`` should receive on ``protocol``, in due-time order per milestone."""
    return list(iter_plan(patient, protocol, window, ZoneInfo(patient.timezone)))


def iter_plan(
    patient: Patient, protocol: Protocol, window: SendWindow, zone: ZoneInfo
) -> Iterator[PlannedReminder]:
    """Generator form of :func:`plan` (the zone is resolved once by the caller)."""
    for milestone in protocol.milestones:
        if not milestone.applies_to(patient.attributes):
            continue
        channels = [c for c in milestone.channels if c in patient.channels]
        if not channels:
            continue
        for occurrence, offset in enumerate(milestone.offsets(), start=1):
            due = due_at(patient.surgery_date, offset, milestone.send_time, zone, window)
            expires = due + milestone.expires_after
            for channel in channels:
                yield PlannedReminder(
                    patient_id=patient.id,
                    protocol=protocol.id,
                    milestone=milestone.id,
                    occurrence=occurrence,
                    channel=channel,
                    template=milestone.template,
                    due_at=due,
                    expires_at=expires,
                )


def initial_status(reminder: PlannedReminder, now: datetime) -> ReminderStatus:
    """``expired`` when the reminder can no longer be sent at ``now`` (late enrollment), else ``planned``."""
    return ReminderStatus.EXPIRED if reminder.expires_at <= now else ReminderStatus.PLANNED


def in_window(instant: datetime, zone: ZoneInfo, window: SendWindow) -> bool:
    """Whether ``instant`` falls inside the send window in ``zone``."""
    return window.contains(instant.astimezone(zone).time())


class Planner:
    """Plans patients, computing each distinct plan once.

    A plan depends only on the protocol, anchor date, time zone, channels and the
    attributes the protocol's conditions read: 100,000 patients share a few
    thousand such combinations, so a large sync mostly reuses plans (and the store
    encodes each shared plan for the database once).
    """

    def __init__(self, schedules: Schedules, now: datetime) -> None:
        self.schedules = schedules
        self.now = now
        self._plans: dict[tuple[Any, ...], list[PlanSlot]] = {}
        self._parts: dict[int, tuple[list[PlanSlot], list[PlanSlot]]] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._reads = {
            pid: tuple(sorted({key for m in p.milestones for key in m.when}))
            for pid, p in schedules.protocols.items()
        }

    def zone(self, name: str) -> ZoneInfo:
        """The IANA zone ``name``, loaded once."""
        return self._zones.setdefault(name, ZoneInfo(name))

    def slots(self, patient: Patient) -> list[PlanSlot]:
        """The patient's whole plan, each slot ``expired`` if past its expiry (shared: do not modify)."""
        key = (
            patient.protocol,
            patient.surgery_date,
            patient.timezone,
            patient.channels,
            tuple(patient.attributes.get(k) for k in self._reads[patient.protocol]),
        )
        plan = self._plans.get(key)
        if plan is None:
            zone = self.zone(patient.timezone)
            protocol = self.schedules.protocols[patient.protocol]
            plan = self._plans[key] = [
                (
                    r.protocol,
                    r.milestone,
                    r.occurrence,
                    r.channel,
                    r.template,
                    r.due_at,
                    r.expires_at,
                    initial_status(r, self.now),
                )
                for r in iter_plan(patient, protocol, self.schedules.send_window, zone)
            ]
        return plan

    def split(self, patient: Patient) -> tuple[list[PlanSlot], list[PlanSlot]]:
        """The patient's plan as (already expired, still to send) (shared: do not modify).

        A new patient's expired part is late enrollment's history, stored once per
        shared plan (``reminders.store.late``) rather than as a row per reminder.
        """
        plan = self.slots(patient)
        parts = self._parts.get(id(plan))
        if parts is None:
            expired = ReminderStatus.EXPIRED
            parts = self._parts[id(plan)] = (
                [s for s in plan if s[7] == expired],
                [s for s in plan if s[7] != expired],
            )
        return parts
