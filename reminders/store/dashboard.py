"""What the coordinator dashboard reads: the worklist, patients, one patient, the overview.

Every query here is bounded (a page of rows, a count) and walks an index, so pages stay
fast with 100,000 patients and millions of reminders: failures, retries and sends have
partial indexes (migration 0004), opt-outs reach their patients through the indexes on
``enrollments.phone`` and ``.email``, a patient's rows through the reminder key and
``attempts.reminder_id``. The overview's counts by status are the one full scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from reminders.lifecycle import (
    AttemptOutcome,
    EnrollmentStatus,
    ReminderStatus,
)
from reminders.store.late import with_late
from reminders.store.schema import (
    ATTEMPTS,
    AUDIT,
    ENROLLMENTS,
    OPT_OUTS,
    REMINDERS,
    Attempt,
    Enrollment,
    Reminder,
    active,
    among,
    aware,
    reached,
)

#: Rows shown per worklist section and per page of patients.
PAGE: Final = 50
#: Most failed deliveries the worklist reads (a provider outage failing thousands is one
#: problem, said once the list is full).
MAX_FAILURES: Final = 5_000
#: How far back the worklist looks for failed deliveries and opt-outs.
RECENT: Final = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Who:
    """A patient as a list shows them."""

    #: The clinic's patient id.
    patient_id: str
    #: First and last name.
    name: str
    #: Enrollment status.
    status: str


@dataclass(frozen=True, slots=True)
class Problem:
    """A reminder that needs a person: failed for good, retrying, or in doubt."""

    #: Whose.
    who: Who
    #: The reminder.
    reminder: Reminder
    #: When it last changed (failed, was retried, went in doubt).
    at: datetime


@dataclass(frozen=True, slots=True)
class OptedOut:
    """A live patient whose address asked not to be contacted on a channel."""

    #: Whose.
    who: Who
    #: ``sms`` or ``email``.
    channel: str
    #: How (``sms stop``, ``unsubscribe link``, ``provider 21610``).
    source: str
    #: Since when.
    since: datetime


@dataclass(frozen=True, slots=True)
class Section:
    """Up to :data:`PAGE` rows of a worklist section and how many there are in all."""

    #: The rows shown.
    rows: Sequence[Any]
    #: Every matching row.
    total: int


@dataclass(frozen=True, slots=True)
class Listed:
    """One row of the patients list."""

    #: The enrollment.
    enrollment: Enrollment
    #: Its next planned reminder, if any.
    next: Reminder | None


@dataclass(frozen=True, slots=True)
class Overview:
    """Counts for the overview page."""

    #: Enrollments by status.
    patients: dict[str, int]
    #: Reminders by status.
    reminders: dict[str, int]
    #: Messages handed to a provider per UTC day and channel, the last days first.
    sends: list[tuple[date, dict[str, int]]]
    #: The last sync that changed something: when, and its audit detail.
    last_sync: tuple[datetime, str] | None


#: How many reminders of active patients wait to retry, on SQLite. Without statistics its
#: planner takes ``ix_reminders_due`` (every planned row: millions) for this count whenever
#: that index is the newer of the two (a bulk load rebuilds it), so the count names the
#: partial index that holds only these rows; the literals are its WHERE, term for term.
_RETRYING_COUNT: Final = sa.text(
    "SELECT count(*) FROM reminders INDEXED BY ix_reminders_retrying"  # noqa: S608  # enum constants
    " JOIN enrollments ON enrollments.patient_id = reminders.patient_id"
    f" WHERE reminders.status = '{ReminderStatus.PLANNED}' AND reminders.attempts > 0"
    f" AND +enrollments.status = '{EnrollmentStatus.ACTIVE}'"
)


def _fixed(value: str) -> sa.ColumnElement[str]:
    """``value`` written into the SQL, not bound: a partial index's WHERE (``status =
    'failed'``) is provable only from a constant. PostgreSQL caches a generic plan for a
    statement that psycopg prepared (its fifth run) and that plan cannot use the index: the
    worklist's failures took 1.6 s (a scan of 6 M reminders); with ``status <> $1`` it also
    guessed one followed patient and joined the opt-outs by a nested scan (1.2 s at 20,000)."""
    return sa.literal_column(f"'{value}'")


#: When a message last reached each (patient, channel) of two arrays, on PostgreSQL: one
#: backward step into ``ix_reminders_reached`` per pair. Grouping every accepted send of
#: the patients read them all (37,000 index entries, each checked in the table until a
#: vacuum marks its page visible, for 1,700 pairs: 66 ms of the worklist's 112 -> 22).
_LAST_REACHED: Final = sa.text(
    "SELECT k.patient_id, k.channel, (SELECT max(r.sent_at) FROM reminders r"  # noqa: S608  # enum constants
    " WHERE r.patient_id = k.patient_id AND r.channel = k.channel"
    f" AND {reached('r.status')})"
    " FROM unnest(CAST(:patients AS text[]), CAST(:channels AS text[])) AS k(patient_id, channel)"
)


def _who(row: Any) -> Who:
    name = f"{row.first_name} {row.last_name}".strip()
    return Who(row.patient_id, name, row.status)


def _followed(conn: Connection) -> sa.ColumnElement[bool]:
    """Patients the clinic still follows: all but the withdrawn (a patient whose every
    message was stopped is ``completed`` early, and still needs a call)."""
    return ENROLLMENTS.c.status != _fixed(EnrollmentStatus.WITHDRAWN)


class DashboardQueries:
    """The dashboard's reads, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _reminders(self, query: Any) -> list[tuple[Reminder, Any]]:
        with Session(bind=self.conn) as session:
            return [(row[0], row) for row in session.exec(query).all()]

    def _count(self, query: sa.Select[Any]) -> int:
        return int(
            self.conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        )

    # -- the worklist ---------------------------------------------------------------------

    def _with_patient(self) -> Any:
        return select(Reminder, Enrollment).join(
            Enrollment, col(Enrollment.patient_id) == col(Reminder.patient_id)
        )

    def failed(self, now: datetime) -> Section:
        """Failed deliveries of patients still followed in the last 30 days, with no later message
        reaching them on that channel: the latest per patient and channel, newest first.

        Small steps rather than one correlated query (which visited every reminder of each
        failing patient twice, for the rows and for the count): the failures of the window
        (their partial index), which of their patients are followed (by primary key: joined
        in the first step, PostgreSQL hashed all 100,000 enrollments), the last accepted send
        of those patients per channel, then the shown rows by id.
        """
        r, e = REMINDERS.c, ENROLLMENTS.c
        failures = self.conn.execute(
            sa.select(r.id, r.patient_id, r.channel, r.updated_at)
            .where(r.status == _fixed(ReminderStatus.FAILED), r.updated_at >= now - RECENT)
            .order_by(r.updated_at.desc(), r.id.desc())
            .limit(MAX_FAILURES)
        ).all()
        followed: set[str] = set()
        for these in among(self.conn, e.patient_id, sorted({row.patient_id for row in failures})):
            followed.update(
                self.conn.execute(
                    sa.select(e.patient_id).where(these, _followed(self.conn))
                ).scalars()
            )
        latest: dict[tuple[str, str], tuple[int, datetime]] = {}
        for row in failures:
            if row.patient_id in followed:
                latest.setdefault((row.patient_id, row.channel), (row.id, row.updated_at))
        reached = self._reached(list(latest))
        pending = [
            rid for key, (rid, at) in latest.items() if key not in reached or reached[key] <= at
        ]
        shown = self._reminders(
            self._with_patient()
            .where(col(Reminder.id).in_(pending[:PAGE]))
            .order_by(r.updated_at.desc(), r.id.desc())
        )
        rows = [Problem(_who(row[1]), m, m.updated_at) for m, row in shown]
        return Section(rows, len(pending))

    def _reached(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """When a message last reached each (patient, channel) of ``keys`` that has one."""
        r = REMINDERS.c
        if self.conn.dialect.name == "postgresql":
            rows = self.conn.execute(
                _LAST_REACHED,
                {"patients": [pid for pid, _ in keys], "channels": [ch for _, ch in keys]},
            ).all()
        else:  # SQLite reads the covering index alone, visible or not
            rows = [
                row
                for these in among(self.conn, r.patient_id, sorted({pid for pid, _ in keys}))
                for row in self.conn.execute(
                    sa.select(r.patient_id, r.channel, sa.func.max(r.sent_at))
                    .where(these, sa.text(reached("reminders.status")))
                    .group_by(r.patient_id, r.channel)
                )
            ]
        # A sent or delivered row always has sent_at: None is a pair nothing reached.
        return {(pid, channel): at for pid, channel, sent in rows if (at := aware(sent))}

    def retrying(self) -> Section:
        """Reminders of active patients planned again after a failed try, soonest retry first."""
        r = REMINDERS.c
        where = (
            r.status == _fixed(ReminderStatus.PLANNED),
            r.attempts > sa.literal_column("0"),
            active(self.conn),
        )
        rows = self._reminders(
            self._with_patient().where(*where).order_by(r.not_before).limit(PAGE)
        )
        if self.conn.dialect.name == "sqlite":
            total = int(self.conn.execute(_RETRYING_COUNT).scalar_one())
        else:  # each retry's patient by primary key: joined, PostgreSQL hashed all 100,000
            e = ENROLLMENTS.c
            status = sa.select(e.status).where(e.patient_id == r.patient_id).scalar_subquery()
            total = int(
                self.conn.execute(
                    sa.select(sa.func.count())
                    .select_from(REMINDERS)
                    .where(*where[:2], status == _fixed(EnrollmentStatus.ACTIVE))
                ).scalar_one()
            )
        return Section([Problem(_who(row[1]), m, m.updated_at) for m, row in rows], total)

    def in_doubt(self) -> Section:
        """Reminders whose last try may have reached the provider, oldest first."""
        a = ATTEMPTS.c
        query = (
            select(Reminder, Enrollment, col(Attempt.started_at))
            .join(Enrollment, col(Enrollment.patient_id) == col(Reminder.patient_id))
            .join(Attempt, col(Attempt.reminder_id) == col(Reminder.id))
            .where(a.outcome == AttemptOutcome.IN_DOUBT)
        )
        rows = self._reminders(query.order_by(a.started_at).limit(PAGE))
        total = self._count(sa.select(a.id).where(a.outcome == AttemptOutcome.IN_DOUBT))
        return Section([Problem(_who(row[1]), m, row[2]) for m, row in rows], total)

    def opted_out(self, now: datetime) -> Section:
        """Patients still followed whose phone or email opted out in the last 30 days,
        most recent first."""
        o, e = OPT_OUTS.c, ENROLLMENTS.c
        match = sa.or_(
            sa.and_(o.channel == _fixed("sms"), e.phone == o.address),
            sa.and_(o.channel == _fixed("email"), e.email == o.address),
        )
        # The total beside the page (a window over the join's rows): the join, an index
        # probe of enrollments per opt-out, runs once rather than for the rows and the count.
        total = sa.func.count().over().label("total")
        query = (
            sa.select(
                e.patient_id,
                e.first_name,
                e.last_name,
                e.status,
                o.channel,
                o.source,
                o.changed_at,
                total,
            )
            .select_from(OPT_OUTS.join(ENROLLMENTS, match))
            .where(o.opted_out, o.changed_at >= now - RECENT, _followed(self.conn))
        )
        rows = self.conn.execute(query.order_by(o.changed_at.desc()).limit(PAGE)).all()
        shown = [OptedOut(_who(row), row.channel, row.source, row.changed_at) for row in rows]
        return Section(shown, rows[0].total if rows else 0)

    # -- patients -------------------------------------------------------------------------

    def patients(self, *, after: str | None = None, status: str | None = None) -> list[Listed]:
        """A page of enrollments by patient id, after ``after``, optionally of one status."""
        query = select(Enrollment).order_by(col(Enrollment.patient_id)).limit(PAGE)
        if after is not None:
            query = query.where(col(Enrollment.patient_id) > after)
        if status is not None:
            query = query.where(col(Enrollment.status) == status)
        return self._listed(query)

    def search(self, text: str) -> list[Listed]:
        """Enrollments whose id is ``text``, or whose name contains it (any case)."""
        needle = text.strip().lower()
        if not needle:
            return []
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        full = sa.func.lower(col(Enrollment.first_name) + " " + col(Enrollment.last_name))
        query = (
            select(Enrollment)
            .where(
                sa.or_(
                    sa.func.lower(col(Enrollment.patient_id)) == needle,
                    full.like(f"%{escaped}%", escape="\\"),
                )
            )
            .order_by(col(Enrollment.patient_id))
            .limit(PAGE)
        )
        return self._listed(query)

    def _listed(self, query: Any) -> list[Listed]:
        with Session(bind=self.conn) as session:
            found = list(session.exec(query).all())
        upcoming = self.next_messages([e.patient_id for e in found])
        return [Listed(e, upcoming.get(e.patient_id)) for e in found]

    def next_messages(self, patient_ids: Sequence[str]) -> dict[str, Reminder]:
        """The next planned reminder of each of ``patient_ids`` (at most a page of them)."""
        if not patient_ids:
            return {}
        query = (
            select(Reminder)
            .where(
                col(Reminder.patient_id).in_(list(patient_ids)),
                col(Reminder.status) == ReminderStatus.PLANNED,
            )
            .order_by(col(Reminder.not_before))
        )
        first: dict[str, Reminder] = {}
        with Session(bind=self.conn) as session:
            for reminder in session.exec(query):
                first.setdefault(reminder.patient_id, reminder)
        return first

    # -- one patient ----------------------------------------------------------------------

    def attempts(self, reminder_ids: Sequence[int]) -> dict[int, list[Attempt]]:
        """Every attempt of each reminder, in order."""
        if not reminder_ids:
            return {}
        query = (
            select(Attempt)
            .where(col(Attempt.reminder_id).in_(list(reminder_ids)))
            .order_by(col(Attempt.reminder_id), col(Attempt.number), col(Attempt.id))
        )
        found: dict[int, list[Attempt]] = {}
        with Session(bind=self.conn) as session:
            for attempt in session.exec(query):
                found.setdefault(attempt.reminder_id, []).append(attempt)
        return found

    # -- the overview ---------------------------------------------------------------------

    def overview(self, now: datetime, days: int = 14) -> Overview:
        """Counts by status, sends per day over ``days`` UTC days, the last sync."""
        e, r, a = ENROLLMENTS.c, REMINDERS.c, AUDIT.c
        patients: dict[Any, Any] = dict(
            self.conn.execute(sa.select(e.status, sa.func.count()).group_by(e.status)).all()
        )
        reminders: dict[Any, Any] = with_late(
            self.conn,
            dict(self.conn.execute(sa.select(r.status, sa.func.count()).group_by(r.status)).all()),
        )
        start = datetime.combine(
            now.date() - timedelta(days=days - 1), datetime.min.time(), now.tzinfo
        )
        day = (
            sa.func.date(r.sent_at)
            if self.conn.dialect.name == "sqlite"
            else sa.func.date(sa.func.timezone("UTC", r.sent_at))
        )
        per_day: dict[date, dict[str, int]] = {}
        for when, channel, n in self.conn.execute(
            sa.select(day, r.channel, sa.func.count())
            .where(r.sent_at.is_not(None), r.sent_at >= start)
            .group_by(day, r.channel)
        ):
            key = when if isinstance(when, date) else date.fromisoformat(str(when))
            per_day.setdefault(key, {})[str(channel)] = int(n)
        sends = [
            (d, per_day.get(d, {})) for d in (now.date() - timedelta(days=i) for i in range(days))
        ]
        last = self.conn.execute(
            sa.select(a.at, a.detail).where(a.kind == "config.sync").order_by(a.id.desc()).limit(1)
        ).first()
        return Overview(
            {str(k): int(v) for k, v in patients.items()},
            {str(k): int(v) for k, v in reminders.items()},
            sends,
            (last.at, last.detail) if last else None,
        )
