"""Late enrollment: the milestones already expired when a patient was enrolled.

A clinic that starts using the service enrols patients mid-recovery, and each of their
milestones already past its expiry is history that must show (SPEC 6: "expired
milestones are marked so") and is never sent. As one ``expired`` reminder row per
milestone, channel and patient it was two thirds of a 100,000-patient first sync: 3.7
of 6 million rows. Here it is one ``late_plans`` row for all the patients of a sync
whose plan is the same, and ``enrollments.late_plan_id`` says whose it is.

The record is kept, not recomputed: the slots are written at enrollment and never
change, so the timeline shows what was marked expired then, whatever the protocol or
the patient's record says later. Before anything changes a patient's reminders
(a re-plan, a resend) :meth:`LateQueries.materialize` turns their share into ordinary rows; the
readers (``expand``, ``count``) show both forms alike.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.lifecycle import MessageKind, ReminderStatus
from reminders.store.bulk import ByIdentity
from reminders.store.schema import ENROLLMENTS, LATE_PLANS, Reminder, among

#: One expired slot: protocol, milestone, occurrence, channel, template, due_at, expires_at.
LateSlot = tuple[str, str, int, str, str, datetime, datetime]
#: Inserts ``(patient_id, slots)`` plans as reminder rows stamped with the given time.
Inserter = Callable[[Sequence[tuple[str, Sequence[Any]]], datetime], int]


class LateQueries:
    """Late histories, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        #: The histories this transaction stored, by their slots: when, and their id (a
        #: sync's parts share plans, and each is stored once).
        self._marked: ByIdentity[tuple[datetime, int]] = ByIdentity()

    def mark(
        self, patients: Sequence[tuple[dict[str, Any], Sequence[tuple[Any, ...]]]], now: datetime
    ) -> None:
        """Store each distinct history of ``(enrollment row, slots)`` once and set the rows'
        ``late_plan_id`` (before the rows are inserted); one stored by this transaction
        before, at the same time, is not stored again."""
        new = {id(slots): slots for _, slots in patients if self._stored(slots, now) is None}
        if new:
            rows = [
                {"marked_at": now, "size": len(slots), "slots": _encode(slots)}
                for slots in new.values()
            ]
            insert = LATE_PLANS.insert().returning(LATE_PLANS.c.id, sort_by_parameter_order=True)
            ids = self.conn.execute(insert, rows).scalars()
            for slots, plan_id in zip(new.values(), ids, strict=True):
                self._marked.put(slots, (now, int(plan_id)))
        for row, slots in patients:
            row["late_plan_id"] = self._stored(slots, now)

    def _stored(self, slots: object, now: datetime) -> int | None:
        found = self._marked.get(slots)
        return found[1] if found is not None and found[0] == now else None

    def materialize(self, patient_ids: Sequence[str], insert: Inserter) -> None:
        """Turn the late history of ``patient_ids`` into reminder rows.

        Called before a change to their reminders, so that a re-plan compares its new plan
        with every stored reminder, as it did when each was a row.
        """
        by_time: dict[datetime, list[tuple[str, Sequence[Any]]]] = defaultdict(list)
        plans: dict[int, list[tuple[Any, ...]]] = {}
        owners: list[str] = []
        for pid, plan_id, marked_at, slots in self._histories(patient_ids):
            if plan_id not in plans:
                expired = ReminderStatus.EXPIRED
                plans[plan_id] = [(*slot, expired) for slot in _decode(slots)]
            by_time[marked_at].append((pid, plans[plan_id]))
            owners.append(pid)
        for marked_at, group in by_time.items():
            insert(group, marked_at)
        e = ENROLLMENTS.c
        for these in among(self.conn, e.patient_id, owners):
            self.conn.execute(ENROLLMENTS.update().where(these).values(late_plan_id=None))

    def expand(self, patient_ids: Sequence[str] | None = None) -> list[Reminder]:
        """The late histories of ``patient_ids`` (or of everyone) as ``expired`` reminders
        without an id (they have no row)."""
        decoded: dict[int, list[LateSlot]] = {}
        found: list[Reminder] = []
        for pid, plan_id, marked_at, slots in self._histories(patient_ids):
            if plan_id not in decoded:
                decoded[plan_id] = _decode(slots)
            found.extend(_reminders(pid, decoded[plan_id], marked_at))
        return found

    def count(self) -> int:
        """How many expired reminders the late histories hold."""
        total = self.conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(LATE_PLANS.c.size), 0)).select_from(_JOINED)
        ).scalar_one()
        return int(total)

    def _histories(
        self, patient_ids: Sequence[str] | None
    ) -> Iterator[tuple[str, int, datetime, str]]:
        e, lp = ENROLLMENTS.c, LATE_PLANS.c
        query = sa.select(e.patient_id, lp.id, lp.marked_at, lp.slots).select_from(_JOINED)
        queries = (
            [query]
            if patient_ids is None
            else [query.where(these) for these in among(self.conn, e.patient_id, patient_ids)]
        )
        for each in queries:
            rows = self.conn.execute(each)
            for pid, plan_id, marked_at, slots in rows:
                yield pid, int(plan_id), marked_at, slots  # aware: a UTCDateTime column


_JOINED: Final = ENROLLMENTS.join(LATE_PLANS, LATE_PLANS.c.id == ENROLLMENTS.c.late_plan_id)


def with_late(conn: Connection, counts: dict[str, int]) -> dict[str, int]:
    """``counts`` of reminders by status, with the expired ones of the late histories added."""
    late = LateQueries(conn).count()
    if late:
        counts[ReminderStatus.EXPIRED] = counts.get(ReminderStatus.EXPIRED, 0) + late
    return counts


def _reminders(pid: str, slots: Sequence[LateSlot], marked_at: datetime) -> Iterable[Reminder]:
    for protocol, milestone, occurrence, channel, template, due, expires in slots:
        yield Reminder(
            id=None,
            patient_id=pid,
            protocol=protocol,
            milestone=milestone,
            occurrence=occurrence,
            channel=channel,
            template=template,
            due_at=due,
            not_before=due,
            expires_at=expires,
            status=ReminderStatus.EXPIRED,
            attempts=0,
            updated_at=marked_at,
            revision=0,
            kind=MessageKind.REMINDER,
        )


def _encode(slots: Sequence[tuple[Any, ...]]) -> str:
    """A plan's slots (their status dropped: every one is expired) as compact JSON."""
    return json.dumps(
        [[p, m, o, c, t, d.isoformat(), x.isoformat()] for p, m, o, c, t, d, x, *_ in slots],
        separators=(",", ":"),
    )


def _decode(text: str) -> list[LateSlot]:
    return [
        (p, m, int(o), c, t, datetime.fromisoformat(d), datetime.fromisoformat(x))
        for p, m, o, c, t, d, x in json.loads(text)
    ]
