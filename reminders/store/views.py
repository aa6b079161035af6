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
from reminders.lifecycle import AttemptOutcome, Attention, MessageKind, ReminderStatus
from reminders.store.late import LateQueries, with_late
from reminders.store.schema import (
    ATTEMPTS,
    AUDIT,
    ENROLLMENTS,
    NEEDS_ATTENTION,
    OPT_OUTS,
    REMINDERS,
    Enrollment,
    Reminder,
    active,
    among,
    aware,
    in_doubt_ids,
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


@dataclass(frozen=True, slots=True)
class AttentionItem:
    """One reminder that needs a coordinator, and why."""

    #: Why it needs a coordinator.
    state: Attention
    #: The reminder as stored: attempts, error code and text, deadline.
    reminder: TimelineEntry


@dataclass(frozen=True, slots=True)
class AttentionPage:
    """One page of the reminders that need a coordinator, most urgent first."""

    #: How many need a coordinator in all, by state (every state present).
    counts: dict[str, int]
    #: The reminders of this page.
    items: list[AttentionItem]
    #: How many come before this page.
    offset: int

    @property
    def total(self) -> int:
        """How many need a coordinator in all."""
        return sum(self.counts.values())


def _attention_state() -> sa.ColumnElement[Any]:
    """The :class:`Attention` of a row that matches ``NEEDS_ATTENTION``."""
    r = REMINDERS.c
    return sa.case(
        (r.status == ReminderStatus.FAILED, sa.literal(Attention.FAILED.value)),
        (r.status == ReminderStatus.EXPIRED, sa.literal(Attention.EXPIRED.value)),
        (r.id.in_(in_doubt_ids()), sa.literal(Attention.IN_DOUBT.value)),
        else_=sa.literal(Attention.RETRYING.value),
    )


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
        """The messages to each of ``patient_ids``, in due order (as their timelines: reminders
        and responses to their texts, not the notices the care team got about them)."""
        found: dict[str, list[TimelineEntry]] = {pid: [] for pid in patient_ids}
        for these in among(self.conn, REMINDERS.c.patient_id, list(patient_ids)):
            query = (
                select(Reminder)
                .where(
                    these,
                    col(Reminder.kind) != MessageKind.NOTICE,
                )
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
        for row in LateQueries(self.conn).expand(list(patient_ids)):
            found[row.patient_id].append(row)
        for rows in found.values():
            rows.sort(key=lambda r: (r.due_at, r.milestone, r.occurrence, r.channel))
        return found

    def sent_attempts(
        self, reminder_ids: Sequence[int]
    ) -> dict[int, tuple[str | None, str | None]]:
        """``(body digest, provider id)`` of the attempt that sent each of ``reminder_ids``."""
        a = ATTEMPTS.c
        found: dict[int, tuple[str | None, str | None]] = {}
        for these in among(self.conn, a.reminder_id, list(reminder_ids)):
            rows = self.conn.execute(
                sa.select(a.reminder_id, a.body_digest, a.provider_id)
                .where(
                    these,
                    a.outcome.in_((AttemptOutcome.SENT, AttemptOutcome.IN_DOUBT_SENT)),
                )
                .order_by(a.id)
            )
            for reminder_id, digest, provider in rows:
                found[int(reminder_id)] = (digest, provider)
        return found

    def timeline(
        self, patient_id: str | None = None, *, notices: bool = False
    ) -> list[TimelineEntry]:
        """Messages to one patient (or all), in due order: reminders and responses to their
        texts, and with ``notices`` also what the care team was told about them."""
        query = select(Reminder).order_by(
            col(Reminder.due_at),
            col(Reminder.patient_id),
            col(Reminder.milestone),
            col(Reminder.occurrence),
            col(Reminder.channel),
        )
        if patient_id is not None:
            query = query.where(col(Reminder.patient_id) == patient_id)
        if not notices:
            query = query.where(col(Reminder.kind) != MessageKind.NOTICE)
        rows = self._reminders(query)
        late = LateQueries(self.conn).expand(None if patient_id is None else [patient_id])
        if not late:
            return rows
        rows += late
        rows.sort(key=lambda r: (r.due_at, r.patient_id, r.milestone, r.occurrence, r.channel))
        return rows

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

    def attention_counts(self, *, expired_since: datetime | None = None) -> dict[str, int]:
        """How many reminders need a coordinator, by :class:`Attention` (every state present).

        ``expired_since`` counts only the reminders that expired at or after it (``tick``:
        what this tick lost to an outage, not every outage before).
        """
        state = _attention_state()
        query = sa.select(state, sa.func.count()).where(NEEDS_ATTENTION).group_by(state)
        if expired_since is not None:
            r = REMINDERS.c
            query = query.where(
                sa.or_(r.status != ReminderStatus.EXPIRED, r.updated_at >= expired_since)
            )
        return {a.value: 0 for a in Attention} | self._counts(query)

    def attention(self, *, offset: int = 0, limit: int | None = None) -> AttentionPage:
        """Reminders that need a coordinator: in doubt, retrying, expired after attempts,
        failed; in that order, the most recently changed first within each."""
        state = _attention_state()
        rank = sa.case({a.value: n for n, a in enumerate(Attention)}, value=state)
        query = (
            select(Reminder, state)
            .where(NEEDS_ATTENTION)
            .order_by(rank, col(Reminder.updated_at).desc(), col(Reminder.id).desc())
            .offset(offset)
            .limit(limit)
        )
        with self._session() as session:
            rows = session.exec(query).all()
        items = [AttentionItem(Attention(s), r) for r, s in rows]
        return AttentionPage(self.attention_counts(), items, offset)

    def reminder_counts(self) -> dict[str, int]:
        """Planned reminders (not responses or notices) by status, late histories included."""
        return with_late(
            self.conn,
            self._counts(
                sa.select(REMINDERS.c.status, sa.func.count())
                .where(REMINDERS.c.kind == MessageKind.REMINDER)
                .group_by(REMINDERS.c.status)
            ),
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
