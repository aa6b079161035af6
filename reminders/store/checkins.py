"""Check-ins and alerts: questions asked, answers read, alerts raised and taken.

Exactly once rests on two unique keys: a check-in per milestone occurrence
(``uq_check_in_key``) and an alert per check-in and source (``uq_alert_firing``). Both
are written with ``INSERT ... ON CONFLICT DO NOTHING``, so a webhook retried, a reply
replayed with ``inbound --sid`` or two instances answering the same burst cannot raise
a second alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from reminders.lifecycle import AlertLevel, AlertStatus, CheckInStatus
from reminders.store.schema import (
    ALERTS,
    CHECK_INS,
    ENROLLMENTS,
    REMINDERS,
    Alert,
    CheckIn,
    upsert,
)


@dataclass(frozen=True, slots=True)
class Asked:
    """A check-in question that went out: what opens a check-in when its reminder is accepted."""

    #: Patient, protocol, milestone and occurrence: the check-in's key.
    patient_id: str
    protocol: str
    milestone: str
    occurrence: int
    #: The reminder that carried it.
    reminder_id: int
    #: Question kind and measure.
    kind: str
    measure: str
    #: When it was sent, and when its reply window closes.
    asked_at: datetime
    closes_at: datetime


class CheckInQueries:
    """Check-ins, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def open(self, asked: Asked) -> int | None:
        """Open the check-in of ``asked`` unless another channel opened it; returns its id or None."""
        row = {
            "patient_id": asked.patient_id,
            "protocol": asked.protocol,
            "milestone": asked.milestone,
            "occurrence": asked.occurrence,
            "reminder_id": asked.reminder_id,
            "kind": asked.kind,
            "measure": asked.measure,
            "asked_at": asked.asked_at,
            "closes_at": asked.closes_at,
            "status": CheckInStatus.OPEN,
            "reprompted": False,
        }
        stmt = upsert(self.conn, CHECK_INS).values(row)
        return self.conn.execute(
            stmt.on_conflict_do_nothing(
                index_elements=["patient_id", "protocol", "milestone", "occurrence"]
            ).returning(CHECK_INS.c.id)
        ).scalar_one_or_none()

    def open_for(self, sender: str, now: datetime) -> CheckIn | None:
        """The most recent check-in still open for a patient reached at ``sender`` (E.164)."""
        c, e = CHECK_INS.c, ENROLLMENTS.c
        patients = sa.select(e.patient_id).where(e.phone == sender)
        with Session(self.conn) as session:
            return session.exec(
                select(CheckIn)
                .where(
                    col(CheckIn.status) == CheckInStatus.OPEN,
                    col(CheckIn.closes_at) > now,
                    col(CheckIn.patient_id).in_(patients),
                )
                .order_by(c.asked_at.desc(), c.id.desc())
                .limit(1)
                .with_for_update()
            ).first()

    def get(self, check_in_id: int) -> CheckIn | None:
        """One check-in by id."""
        with Session(self.conn) as session:
            return session.get(CheckIn, check_in_id)

    def of_reminder(self, reminder_id: int) -> CheckIn | None:
        """The check-in a reminder's milestone occurrence opened, if it opened one."""
        r = REMINDERS.c
        key = sa.select(r.patient_id, r.protocol, r.milestone, r.occurrence).where(
            r.id == reminder_id
        )
        found = self.conn.execute(key).first()
        if found is None:
            return None
        with Session(self.conn) as session:
            return session.exec(
                select(CheckIn).where(
                    col(CheckIn.patient_id) == found.patient_id,
                    col(CheckIn.protocol) == found.protocol,
                    col(CheckIn.milestone) == found.milestone,
                    col(CheckIn.occurrence) == found.occurrence,
                )
            ).first()

    def answer(
        self, check_in_id: int, value: int, now: datetime, *, via: str, inbound_id: int | None
    ) -> bool:
        """Record the answer of an open check-in; False if it was no longer open (a race, a retry)."""
        c = CHECK_INS.c
        return (
            self.conn.execute(
                CHECK_INS.update()
                .where(c.id == check_in_id, c.status == CheckInStatus.OPEN)
                .values(
                    status=CheckInStatus.ANSWERED,
                    value=value,
                    answered_at=now,
                    via=via,
                    inbound_id=inbound_id,
                )
            ).rowcount
            == 1
        )

    def cancel_open_for(self, sender: str) -> int:
        """Cancel the open check-ins of patients reached at ``sender`` (they opted out)."""
        c, e = CHECK_INS.c, ENROLLMENTS.c
        patients = sa.select(e.patient_id).where(e.phone == sender)
        return self.conn.execute(
            CHECK_INS.update()
            .where(c.status == CheckInStatus.OPEN, c.patient_id.in_(patients))
            .values(status=CheckInStatus.CANCELLED)
        ).rowcount

    def reprompt(self, check_in_id: int) -> bool:
        """Mark that the patient was asked again; False if they already were."""
        c = CHECK_INS.c
        return (
            self.conn.execute(
                CHECK_INS.update()
                .where(c.id == check_in_id, c.status == CheckInStatus.OPEN, sa.not_(c.reprompted))
                .values(reprompted=True)
            ).rowcount
            == 1
        )

    def previous_value(self, check_in: CheckIn) -> int | None:
        """The patient's last answer of the same measure before ``check_in`` was asked."""
        c = CHECK_INS.c
        return self.conn.execute(
            sa.select(c.value)
            .where(
                c.patient_id == check_in.patient_id,
                c.measure == check_in.measure,
                c.status == CheckInStatus.ANSWERED,
                c.id != check_in.id,
                c.asked_at <= check_in.asked_at,
            )
            .order_by(c.asked_at.desc(), c.id.desc())
            .limit(1)
        ).scalar_one_or_none()

    def close_due(self, now: datetime) -> list[CheckIn]:
        """Mark open check-ins whose window closed by ``now`` ``unanswered``; returns them."""
        c = CHECK_INS.c
        with Session(self.conn) as session:
            due = list(
                session.exec(
                    select(CheckIn)
                    .where(col(CheckIn.status) == CheckInStatus.OPEN, col(CheckIn.closes_at) <= now)
                    .order_by(c.closes_at, c.id)
                    .with_for_update(skip_locked=True)
                )
            )
        ids = [ci.id for ci in due]
        if ids:
            self.conn.execute(
                CHECK_INS.update()
                .where(c.id.in_(ids), c.status == CheckInStatus.OPEN)
                .values(status=CheckInStatus.UNANSWERED)
            )
        return due

    def unanswered_run(self, check_in: CheckIn) -> int:
        """How many of the patient's closed check-ins in a row, ending with ``check_in``, went
        unanswered (check-ins of the same protocol, in the order they were asked)."""
        c = CHECK_INS.c
        statuses = self.conn.execute(
            sa.select(c.status)
            .where(
                c.patient_id == check_in.patient_id,
                c.protocol == check_in.protocol,
                c.asked_at <= check_in.asked_at,
                c.status != CheckInStatus.OPEN,
            )
            .order_by(c.asked_at.desc(), c.id.desc())
            .limit(50)
        ).scalars()
        run = 0
        for status in statuses:
            if status != CheckInStatus.UNANSWERED:
                break
            run += 1
        return run

    def of(self, patient_id: str) -> list[CheckIn]:
        """Every check-in of a patient, first asked first."""
        with Session(self.conn) as session:
            return list(
                session.exec(
                    select(CheckIn)
                    .where(col(CheckIn.patient_id) == patient_id)
                    .order_by(col(CheckIn.asked_at), col(CheckIn.id))
                )
            )

    def counts(self) -> dict[str, int]:
        """Check-ins by status (metrics)."""
        c = CHECK_INS.c
        rows = self.conn.execute(sa.select(c.status, sa.func.count()).group_by(c.status))
        return {str(status): int(n) for status, n in rows}

    def all(self) -> list[CheckIn]:
        """Every check-in (reports)."""
        with Session(self.conn) as session:
            return list(session.exec(select(CheckIn).order_by(col(CheckIn.id))))


class AlertQueries:
    """Alerts, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def raise_once(
        self,
        check_in: CheckIn,
        *,
        source: str,
        level: AlertLevel,
        reason: str,
        words: str,
        now: datetime,
    ) -> int | None:
        """Store the alert of one rule firing; None if that firing was stored before."""
        assert check_in.id is not None  # noqa: S101  # stored check-ins have ids
        row = {
            "patient_id": check_in.patient_id,
            "check_in_id": check_in.id,
            "source": source,
            "level": level,
            "reason": reason,
            "words": words,
            "raised_at": now,
            "status": AlertStatus.OPEN,
        }
        stmt = upsert(self.conn, ALERTS).values(row)
        return self.conn.execute(
            stmt.on_conflict_do_nothing(index_elements=["check_in_id", "source"]).returning(
                ALERTS.c.id
            )
        ).scalar_one_or_none()

    def get(self, alert_id: int) -> Alert | None:
        """One alert by id."""
        with Session(self.conn) as session:
            return session.get(Alert, alert_id)

    def listed(
        self, status: AlertStatus | None = None, patient_id: str | None = None
    ) -> list[Alert]:
        """Alerts, urgent first, then oldest first; optionally of one status or patient."""
        query = select(Alert)
        if status is not None:
            query = query.where(col(Alert.status) == status)
        if patient_id is not None:
            query = query.where(col(Alert.patient_id) == patient_id)
        urgent_first = sa.case((ALERTS.c.level == AlertLevel.URGENT, 0), else_=1)
        with Session(self.conn) as session:
            return list(
                session.exec(query.order_by(urgent_first, col(Alert.raised_at), col(Alert.id)))
            )

    def acknowledge(self, alert_id: int, *, by: str, note: str | None, at: datetime) -> bool:
        """Take an open alert; False unless it was open."""
        values: dict[str, Any] = {
            "status": AlertStatus.ACKNOWLEDGED,
            "acknowledged_at": at,
            "acknowledged_by": by,
        }
        if note:
            values["note"] = note
        return self._move(alert_id, (AlertStatus.OPEN,), values)

    def resolve(self, alert_id: int, *, by: str, note: str, at: datetime) -> bool:
        """Close an open or acknowledged alert with a note; False if it was resolved already."""
        a = ALERTS.c
        values: dict[str, Any] = {
            "status": AlertStatus.RESOLVED,
            "resolved_at": at,
            "resolved_by": by,
            "note": note,
            # Resolving an alert nobody acknowledged acknowledges it too.
            "acknowledged_at": sa.func.coalesce(a.acknowledged_at, at),
            "acknowledged_by": sa.func.coalesce(a.acknowledged_by, by),
        }
        return self._move(alert_id, (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED), values)

    def _move(self, alert_id: int, sources: Sequence[str], values: dict[str, Any]) -> bool:
        a = ALERTS.c
        return (
            self.conn.execute(
                ALERTS.update().where(a.id == alert_id, a.status.in_(sources)).values(values)
            ).rowcount
            == 1
        )

    def counts(self) -> dict[tuple[str, str], int]:
        """Alerts by (level, status) (metrics)."""
        a = ALERTS.c
        rows = self.conn.execute(
            sa.select(a.level, a.status, sa.func.count()).group_by(a.level, a.status)
        )
        return {(str(level), str(status)): int(n) for level, status, n in rows}

    def seconds_to_acknowledge(self) -> list[tuple[str, float]]:
        """(level, seconds from raised to acknowledged) of every acknowledged alert (metrics)."""
        a = ALERTS.c
        rows = self.conn.execute(
            sa.select(a.level, a.raised_at, a.acknowledged_at).where(a.acknowledged_at.is_not(None))
        )
        return [
            (str(level), (acked - raised).total_seconds())
            for level, raised, acked in rows
            if raised is not None and acked is not None
        ]

    def due_escalation(self, before: datetime) -> list[Alert]:
        """Open urgent alerts raised before ``before`` and never escalated (locked for this run)."""
        with Session(self.conn) as session:
            return list(
                session.exec(
                    select(Alert)
                    .where(
                        col(Alert.status) == AlertStatus.OPEN,
                        col(Alert.level) == AlertLevel.URGENT,
                        col(Alert.escalated_at).is_(None),
                        col(Alert.raised_at) <= before,
                    )
                    .order_by(col(Alert.id))
                    .with_for_update(skip_locked=True)
                )
            )

    def mark_escalated(self, alert_id: int, now: datetime) -> bool:
        """Note the re-escalation; False if another instance did it first."""
        a = ALERTS.c
        return (
            self.conn.execute(
                ALERTS.update()
                .where(a.id == alert_id, a.escalated_at.is_(None))
                .values(escalated_at=now)
            ).rowcount
            == 1
        )
