"""What people read: enrollments, a patient's timeline, the status summary, metrics gauges.

Rows are read through SQLModel (``select(Reminder)`` gives ``Reminder`` objects whose
datetimes are aware UTC); aggregates go through SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from reminders.errors import UnknownPatient
from reminders.lifecycle import AttemptOutcome, ReminderStatus
from reminders.store.schema import (
    ATTEMPTS,
    AUDIT,
    ENROLLMENTS,
    OPT_OUTS,
    REMINDERS,
    Enrollment,
    Reminder,
    active,
    aware,
    in_lists,
)

#: One row of a patient's timeline: the reminder as stored.
TimelineEntry: TypeAlias = Reminder


@dataclass(frozen=True, slots=True)
class StatusSummary:
    """Counts for ``reminders status``."""

    #: Enrollments by status.
    patients: dict[str, int]
    #: Reminders by status.
    reminders: dict[str, int]
    #: The next planned reminder of an active patient (UTC), if any.
    next_due: datetime | None
    #: Recent failed reminders, newest first.
    failures: list[TimelineEntry]
    #: Addresses opted out, by channel.
    opted_out: dict[str, int]


class ViewQueries:
    """Read-side queries, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(bind=self.conn) as session:
            yield session

    def _reminders(self, query: Any) -> list[Reminder]:
        with self._session() as session:
            return list(session.exec(query).all())

    def enrollment(self, patient_id: str) -> Enrollment:
        """One enrollment; raises UnknownPatient."""
        with self._session() as session:
            found = session.get(Enrollment, patient_id)
        if found is None:
            raise UnknownPatient(f"no enrolled patient with id {patient_id!r}")
        return found

    def enrollments(self, after: str | None = None, limit: int | None = None) -> list[Enrollment]:
        """Every enrollment, ordered by patient id (a page of them: ``limit`` after ``after``)."""
        query = select(Enrollment).order_by(col(Enrollment.patient_id))
        if after is not None:
            query = query.where(col(Enrollment.patient_id) > after)
        if limit is not None:
            query = query.limit(limit)
        with self._session() as session:
            return list(session.exec(query))

    def reminders_of(self, patient_ids: Sequence[str]) -> dict[str, list[TimelineEntry]]:
        """The reminders of each of ``patient_ids``, in due order (as their timelines)."""
        found: dict[str, list[TimelineEntry]] = {pid: [] for pid in patient_ids}
        for chunk in in_lists(list(patient_ids)):
            query = (
                select(Reminder)
                .where(col(Reminder.patient_id).in_(chunk))
                .order_by(
                    col(Reminder.patient_id),
                    col(Reminder.due_at),
                    col(Reminder.milestone),
                    col(Reminder.occurrence),
                    col(Reminder.channel),
                )
            )
            for row in self._reminders(query):
                found[row.patient_id].append(row)
        return found

    def sent_attempts(
        self, reminder_ids: Sequence[int]
    ) -> dict[int, tuple[str | None, str | None]]:
        """``(body digest, provider id)`` of the attempt that sent each of ``reminder_ids``."""
        a = ATTEMPTS.c
        found: dict[int, tuple[str | None, str | None]] = {}
        for chunk in in_lists(list(reminder_ids)):
            rows = self.conn.execute(
                sa.select(a.reminder_id, a.body_digest, a.provider_id)
                .where(
                    a.reminder_id.in_(chunk),
                    a.outcome.in_((AttemptOutcome.SENT, AttemptOutcome.IN_DOUBT_SENT)),
                )
                .order_by(a.id)
            )
            for reminder_id, digest, provider in rows:
                found[int(reminder_id)] = (digest, provider)
        return found

    def timeline(self, patient_id: str | None = None) -> list[TimelineEntry]:
        """Reminders of one patient (or all), in due order."""
        query = select(Reminder).order_by(
            col(Reminder.due_at),
            col(Reminder.patient_id),
            col(Reminder.milestone),
            col(Reminder.occurrence),
            col(Reminder.channel),
        )
        if patient_id is not None:
            query = query.where(col(Reminder.patient_id) == patient_id)
        return self._reminders(query)

    def _planned_of_active(self) -> Any:
        return (
            select(Reminder)
            .join(Enrollment, col(Enrollment.patient_id) == col(Reminder.patient_id))
            .where(col(Reminder.status) == ReminderStatus.PLANNED, active(self.conn))
            .order_by(col(Reminder.not_before), col(Reminder.id))
        )

    def upcoming(self, limit: int) -> list[TimelineEntry]:
        """The next ``limit`` planned reminders of active patients, soonest first."""
        return self._reminders(self._planned_of_active().limit(limit))

    def next_due(self) -> datetime | None:
        """The earliest ``not_before`` of a planned reminder of an active patient."""
        # ORDER BY ... LIMIT 1 walks the partial due index and stops at the first
        # active patient; min() over the join would read every planned row.
        first = self.upcoming(1)
        return first[0].not_before if first else None

    def summary(self, failures: int = 10) -> StatusSummary:
        """Counts by status, next due and recent failures."""
        failed = self._reminders(
            select(Reminder)
            .where(col(Reminder.status) == ReminderStatus.FAILED)
            .order_by(col(Reminder.updated_at).desc())
            .limit(failures)
        )
        opted = self._counts(
            sa.select(OPT_OUTS.c.channel, sa.func.count())
            .where(OPT_OUTS.c.opted_out)
            .group_by(OPT_OUTS.c.channel)
        )
        return StatusSummary(
            patients=self._counts(
                sa.select(ENROLLMENTS.c.status, sa.func.count()).group_by(ENROLLMENTS.c.status)
            ),
            reminders=self.reminder_counts(),
            next_due=self.next_due(),
            failures=failed,
            opted_out=opted,
        )

    def reminder_counts(self) -> dict[str, int]:
        """Reminders by status."""
        return self._counts(
            sa.select(REMINDERS.c.status, sa.func.count()).group_by(REMINDERS.c.status)
        )

    def _counts(self, query: sa.Select[Any]) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.conn.execute(query).all()}

    def gauges(self, now: datetime) -> tuple[dict[str, int], int, float]:
        """Reminders by status, the due backlog, and the age in seconds of its oldest item."""
        r, e = REMINDERS.c, ENROLLMENTS.c
        backlog, oldest = self.conn.execute(
            sa.select(sa.func.count(), sa.func.min(r.not_before))
            .select_from(REMINDERS.join(ENROLLMENTS, e.patient_id == r.patient_id))
            .where(r.status == ReminderStatus.PLANNED, r.not_before <= now, active(self.conn))
        ).one()
        oldest_at = aware(oldest)
        lag = max((now - oldest_at).total_seconds(), 0.0) if oldest_at else 0.0
        return self.reminder_counts(), int(backlog), lag

    def audit_events(self, patient_id: str | None = None) -> list[dict[str, Any]]:
        """Audit events, oldest first (optionally of one patient)."""
        query = sa.select(AUDIT).order_by(AUDIT.c.id)
        if patient_id is not None:
            query = query.where(AUDIT.c.patient_id == patient_id)
        return [
            {**dict(r._mapping), "detail": json.loads(r.detail)} for r in self.conn.execute(query)
        ]
