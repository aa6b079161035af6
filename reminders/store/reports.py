"""``reminders report``: check-ins and alerts per patient and per protocol, aggregated in SQL."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.lifecycle import AlertLevel, AlertStatus, CheckInStatus
from reminders.replies import QuestionKind
from reminders.store.schema import ALERTS, CHECK_INS, ENROLLMENTS, aware


@dataclass(frozen=True, slots=True)
class PatientReport:
    """One patient's check-ins and alerts."""

    patient_id: str
    protocol: str
    #: Check-ins asked (open ones included).
    sent: int
    answered: int
    unanswered: int
    #: Scale answers: the latest and the highest (None without any).
    last_score: int | None
    highest_score: int | None
    open_alerts: int


@dataclass(frozen=True, slots=True)
class ProtocolReport:
    """One protocol's check-ins and alerts."""

    protocol: str
    sent: int
    answered: int
    unanswered: int
    #: Answered / closed (answered + unanswered); None before any closed.
    answer_rate: float | None
    #: Alerts raised, by level.
    alerts: dict[str, int]
    #: Median minutes from raised to acknowledged, over acknowledged alerts.
    median_minutes_to_ack: float | None


def _count(column: Any, value: str) -> Any:
    return sa.func.sum(sa.case((column == value, 1), else_=0))


class ReportQueries:
    """Aggregates for the report, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def patients(self) -> list[PatientReport]:
        """Every enrolled patient, with or without check-ins, by patient id."""
        c, e, a = CHECK_INS.c, ENROLLMENTS.c, ALERTS.c
        counts = (
            sa.select(
                c.patient_id,
                sa.func.count().label("asked"),
                _count(c.status, CheckInStatus.ANSWERED).label("n_answered"),
                _count(c.status, CheckInStatus.UNANSWERED).label("n_unanswered"),
                sa.func.max(sa.case((c.kind == QuestionKind.SCALE, c.value), else_=None)).label(
                    "highest"
                ),
            )
            .group_by(c.patient_id)
            .subquery()
        )
        latest = (
            sa.select(c.patient_id, c.value, c.answered_at)
            .where(c.kind == QuestionKind.SCALE, c.status == CheckInStatus.ANSWERED)
            .order_by(c.patient_id, c.answered_at.desc(), c.id.desc())
        )
        last: dict[str, int] = {}
        for row in self.conn.execute(latest):
            last.setdefault(row.patient_id, row.value)
        open_alerts: dict[str, int] = dict(
            self.conn.execute(
                sa.select(a.patient_id, sa.func.count())
                .where(a.status == AlertStatus.OPEN)
                .group_by(a.patient_id)
            ).all()
        )
        rows = self.conn.execute(
            sa.select(e.patient_id, e.protocol, counts)
            .outerjoin(counts, counts.c.patient_id == e.patient_id)
            .order_by(e.patient_id)
        )
        return [
            PatientReport(
                r.patient_id,
                r.protocol,
                int(r.asked or 0),
                int(r.n_answered or 0),
                int(r.n_unanswered or 0),
                last.get(r.patient_id),
                r.highest,
                int(open_alerts.get(r.patient_id, 0)),
            )
            for r in rows
        ]

    def protocols(self) -> list[ProtocolReport]:
        """Every protocol with check-ins, by id."""
        c, a = CHECK_INS.c, ALERTS.c
        checks = self.conn.execute(
            sa.select(
                c.protocol,
                sa.func.count().label("asked"),
                _count(c.status, CheckInStatus.ANSWERED).label("n_answered"),
                _count(c.status, CheckInStatus.UNANSWERED).label("n_unanswered"),
            ).group_by(c.protocol)
        ).all()
        levels: dict[str, dict[str, int]] = {}
        for protocol, level, n in self.conn.execute(
            sa.select(c.protocol, a.level, sa.func.count())
            .join(CHECK_INS, c.id == a.check_in_id)
            .group_by(c.protocol, a.level)
        ):
            levels.setdefault(protocol, {})[level] = int(n)
        waits: dict[str, list[float]] = {}
        for protocol, raised, acked in self.conn.execute(
            sa.select(c.protocol, a.raised_at, a.acknowledged_at)
            .join(CHECK_INS, c.id == a.check_in_id)
            .where(a.acknowledged_at.is_not(None))
        ):
            start, end = aware(raised), aware(acked)
            if start is not None and end is not None:
                waits.setdefault(protocol, []).append((end - start).total_seconds() / 60)
        result = []
        for r in checks:
            closed = int(r.n_answered) + int(r.n_unanswered)
            result.append(
                ProtocolReport(
                    r.protocol,
                    int(r.asked),
                    int(r.n_answered),
                    int(r.n_unanswered),
                    round(int(r.n_answered) / closed, 4) if closed else None,
                    {level: levels.get(r.protocol, {}).get(level, 0) for level in AlertLevel},
                    round(statistics.median(waits[r.protocol]), 2) if r.protocol in waits else None,
                )
            )
        return sorted(result, key=lambda p: p.protocol)
