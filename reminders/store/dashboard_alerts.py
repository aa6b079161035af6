"""What the coordinator dashboard reads of check-ins and alerts: open alerts, a patient's
check-ins, last answers, the answer rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from reminders.lifecycle import AlertLevel, AlertStatus, CheckInStatus
from reminders.store.dashboard import PAGE, RECENT, Section, Who, _who
from reminders.store.schema import ALERTS, CHECK_INS, Alert, CheckIn, Enrollment


@dataclass(frozen=True, slots=True)
class Raised:
    """An alert with its patient and the check-in that raised it."""

    #: The alert.
    alert: Alert
    #: Whose.
    who: Who
    #: The check-in it is about.
    check_in: CheckIn | None


class AlertViews:
    """The dashboard's reads of check-ins and alerts, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def open_alerts(self, source: str, *, raised_by: bool = True) -> Section:
        """Open alerts, urgent first, then oldest, raised by ``source`` (or, with ``raised_by``
        False, by any other): answers, or silence (``missed``)."""
        a = ALERTS.c
        where = [
            a.status == AlertStatus.OPEN,
            (a.source == source) if raised_by else (a.source != source),
        ]
        urgent_first = sa.case((a.level == AlertLevel.URGENT, 0), else_=1)
        order = (urgent_first, a.raised_at, a.id)
        # The page first, then its patients by primary key: joined before the LIMIT,
        # PostgreSQL hashed all 100,000 enrollments for 50 rows.
        page = sa.select(a.id).where(*where).order_by(*order).limit(PAGE).subquery()
        query = (
            select(Alert, Enrollment, CheckIn)
            .join(page, page.c.id == col(Alert.id))
            .join(Enrollment, col(Enrollment.patient_id) == col(Alert.patient_id))
            .outerjoin(CheckIn, col(CheckIn.id) == col(Alert.check_in_id))
            .order_by(*order)
        )
        with Session(bind=self.conn) as session:
            rows = [Raised(alert, _who(e), c) for alert, e, c in session.exec(query).all()]
        total = self.conn.execute(
            sa.select(sa.func.count()).select_from(ALERTS).where(*where)
        ).scalar_one()
        return Section(rows, int(total))

    def of_patient(self, patient_id: str) -> tuple[list[CheckIn], list[Alert]]:
        """A patient's check-ins (first asked first) and alerts (newest first)."""
        with Session(bind=self.conn) as session:
            check_ins = list(
                session.exec(
                    select(CheckIn)
                    .where(col(CheckIn.patient_id) == patient_id)
                    .order_by(col(CheckIn.asked_at), col(CheckIn.id))
                )
            )
            alerts = list(
                session.exec(
                    select(Alert)
                    .where(col(Alert.patient_id) == patient_id)
                    .order_by(col(Alert.raised_at).desc(), col(Alert.id).desc())
                )
            )
        return check_ins, alerts

    def last_answers(self, patient_ids: Sequence[str]) -> dict[str, CheckIn]:
        """The latest answered check-in of each of ``patient_ids`` (a page of them)."""
        if not patient_ids:
            return {}
        query = (
            select(CheckIn)
            .where(
                col(CheckIn.patient_id).in_(list(patient_ids)),
                col(CheckIn.status) == CheckInStatus.ANSWERED,
            )
            .order_by(col(CheckIn.answered_at))
        )
        latest: dict[str, CheckIn] = {}
        with Session(bind=self.conn) as session:
            for check_in in session.exec(query):
                latest[check_in.patient_id] = check_in
        return latest

    def answer_rate(self, now: datetime) -> tuple[int, int, dict[str, int]]:
        """Check-ins closed in the last 30 days: answered, asked, and open alerts by level."""
        c, a = CHECK_INS.c, ALERTS.c
        closed = c.status.in_([CheckInStatus.ANSWERED, CheckInStatus.UNANSWERED])
        counts: dict[Any, Any] = dict(
            self.conn.execute(
                sa.select(c.status, sa.func.count())
                .where(closed, c.asked_at >= now - RECENT)
                .group_by(c.status)
            ).all()
        )
        answered = int(counts.get(CheckInStatus.ANSWERED, 0))
        asked = answered + int(counts.get(CheckInStatus.UNANSWERED, 0))
        levels = {
            str(k): int(v)
            for k, v in self.conn.execute(
                sa.select(a.level, sa.func.count())
                .where(a.status == AlertStatus.OPEN)
                .group_by(a.level)
            ).all()
        }
        return answered, asked, levels
