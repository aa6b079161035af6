"""The sync's queries: enrollments, and the bulk writes that plan, re-plan and cancel reminders.

A sync of 100,000 patients writes millions of reminders, never one statement per
reminder: a small sync's rows go to the driver's ``executemany`` in chunks; a large one
uploads each distinct plan once and lets the database expand the rows (``INSERT ...
SELECT``, the uploads through ``COPY`` on PostgreSQL), and into an empty table builds
the indexes after the load instead of row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.lifecycle import (
    PENDING,
    REPLANNABLE,
    UNSETTLED,
    EnrollmentStatus,
    MessageKind,
    ReminderStatus,
)
from reminders.planning import PlanSlot
from reminders.store.bulk import datetime_encoder, insert_many
from reminders.store.expand import INSERT_COLUMNS, Load, expand, finish
from reminders.store.known import EnrollmentIndex
from reminders.store.late import LateQueries
from reminders.store.schema import (
    AUDIT,
    CHUNK,
    ENROLLMENTS,
    REMINDERS,
    active,
    among,
    batches,
    inserted_id,
)

#: (patient, protocol, milestone, occurrence, channel): what makes a reminder unique.
ReminderKey = tuple[str, str, str, int, str]
#: From this many rows on, the database expands a sync's plans itself (see :mod:`reminders.store.expand`);
#: a sync inserting that many also refreshes the planner's statistics.
BULK_ROWS: Final = 10_000
#: The audit kind of a reminder a coordinator sent again on purpose (``reminders resend``):
#: the sync leaves such a copy alone, as it leaves a sent reminder alone.
RESENT: Final = "reminder.resent"
#: Rows of the enrollment index fetched at a time (a server-side cursor on PostgreSQL).
_INDEX_BATCH: Final = 5_000
#: SQLite page cache while the index is read (KiB).
_INDEX_CACHE_KIB: Final = 2048


@dataclass(frozen=True, slots=True)
class StoredReminder:
    """What a re-plan needs to know of an existing reminder."""

    #: Row id.
    id: int
    #: (patient, protocol, milestone, occurrence, channel).
    key: ReminderKey
    #: Current status.
    status: str
    #: Planned due time.
    due_at: datetime
    #: Expiry.
    expires_at: datetime
    #: Template.
    template: str
    #: When the provider accepted it, if it did.
    sent_at: datetime | None = None
    #: A copy a coordinator asked for (``reminders resend``), not one the sync planned.
    resent: bool = False


class EnrollmentQueries:
    """Enrollments and the sync's bulk writes, inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        #: Inside :meth:`loading`: the state its loads share.
        self._load: Load | None = None

    @contextmanager
    def loading(self) -> Iterator[None]:
        """A sync's loads in parts share their state: each distinct plan is uploaded once,
        and indexes dropped for the first load into an empty table are rebuilt once, at
        the end. A failure inside leaves the indexes and the temporary tables to the
        transaction's rollback (DDL is transactional)."""
        self._load = Load()
        try:
            yield
            finish(self.conn, self._load)
        finally:
            self._load = None

    def index(self) -> EnrollmentIndex:
        """Every stored enrollment's id, source digest and status (read in batches)."""
        e = ENROLLMENTS.c
        index = EnrollmentIndex()
        query = sa.select(e.patient_id, e.source_hash, e.status)
        # On SQLite the scan goes through a small page cache: in the sync's bulk cache the
        # table's pages (about 20 MB at 100,000 patients) would stay resident for nothing.
        sqlite = self.conn.dialect.name == "sqlite"
        cache = int(self.conn.exec_driver_sql("PRAGMA cache_size").scalar_one()) if sqlite else 0
        if sqlite:
            self.conn.exec_driver_sql(f"PRAGMA cache_size=-{_INDEX_CACHE_KIB}")
        try:
            for pid, source_hash, status in self.conn.execute(
                query.execution_options(yield_per=_INDEX_BATCH)
            ):
                index.add(pid, source_hash, status)
        finally:
            if sqlite:
                self.conn.exec_driver_sql(f"PRAGMA cache_size={cache}")
        return index

    def reminders_of(self, patient_ids: Sequence[str]) -> list[StoredReminder]:
        """Every reminder of the given patients, their late history written out as rows first."""
        LateQueries(self.conn).materialize(patient_ids, self.insert_plans)
        c, a = REMINDERS.c, AUDIT.c
        result: list[StoredReminder] = []
        resent = {
            rid
            for these in among(self.conn, a.patient_id, patient_ids)
            for rid in self.conn.execute(
                sa.select(a.reminder_id).where(a.kind == RESENT, these)
            ).scalars()
        }
        for these in among(self.conn, c.patient_id, patient_ids):
            rows = self.conn.execute(
                sa.select(
                    c.id,
                    c.patient_id,
                    c.protocol,
                    c.milestone,
                    c.occurrence,
                    c.channel,
                    c.status,
                    c.due_at,
                    c.expires_at,
                    c.template,
                    c.sent_at,
                ).where(these, c.kind == MessageKind.REMINDER)
            )
            result.extend(
                StoredReminder(
                    r.id,
                    (r.patient_id, r.protocol, r.milestone, r.occurrence, r.channel),
                    r.status,
                    r.due_at,
                    r.expires_at,
                    r.template,
                    r.sent_at,
                    r.id in resent,
                )
                for r in rows
            )
        return result

    def upsert(
        self, new: Sequence[Mapping[str, Any]], changed: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert new enrollments and overwrite changed ones (rows keyed by ``patient_id``)."""
        insert_many(self.conn, ENROLLMENTS, new)
        if changed:
            columns = [k for k in changed[0] if k not in ("patient_id", "created_at")]
            stmt = (
                ENROLLMENTS.update()
                .where(ENROLLMENTS.c.patient_id == sa.bindparam("b_patient_id"))
                .values({k: sa.bindparam(f"b_{k}") for k in columns})
            )
            for chunk in batches(changed):
                self.conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in chunk])

    def set_status(
        self, patient_ids: Sequence[str], status: EnrollmentStatus, now: datetime
    ) -> None:
        """Set the status of several enrollments."""
        for these in among(self.conn, ENROLLMENTS.c.patient_id, patient_ids):
            self.conn.execute(
                ENROLLMENTS.update()
                .where(these)
                .values(status=status, updated_at=now, source_hash="")
            )

    def complete_finished(self, now: datetime) -> list[str]:
        """Mark active enrollments with nothing left to send ``completed``; returns their ids."""
        e, r = ENROLLMENTS.c, REMINDERS.c
        waiting = sa.select(r.patient_id).where(
            r.status.in_(UNSETTLED), r.kind == MessageKind.REMINDER
        )
        ids = [
            row.patient_id
            for row in self.conn.execute(
                sa.select(e.patient_id).where(active(self.conn), e.patient_id.not_in(waiting))
            )
        ]
        self.set_status(ids, EnrollmentStatus.COMPLETED, now)
        return ids

    # -- reminders --------------------------------------------------------------------------

    def insert_plans(
        self,
        plans: Sequence[tuple[str, Sequence[PlanSlot]]],
        now: datetime,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Insert every slot of every ``(patient_id, slots)`` plan; returns the rows written.

        This is the hot path of a large sync (millions of rows). A small one goes to the
        driver's ``executemany``; from :data:`BULK_ROWS` rows on, the database expands the
        rows itself (:func:`reminders.store.expand.expand`): no Python object per reminder.
        """
        total = sum(len(slots) for _, slots in plans)
        if not total:
            return 0
        if total >= BULK_ROWS:
            load = self._load if self._load is not None else Load()
            written = expand(self.conn, load, plans, now, progress)
            if self._load is None:
                finish(self.conn, load)
            return written
        return self._insert_rows(plans, now, progress)

    def _insert_rows(
        self,
        plans: Sequence[tuple[str, Sequence[PlanSlot]]],
        now: datetime,
        progress: Callable[[int], None] | None,
    ) -> int:
        """One tuple per reminder through ``executemany``: plans shared by many patients are
        encoded for the database once, and rows skip SQLAlchemy's per-value type processing."""
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO reminders ({', '.join(INSERT_COLUMNS)}) "  # noqa: S608  # constant columns
            f"VALUES ({', '.join([mark] * len(INSERT_COLUMNS))})"
        )
        db = datetime_encoder(self.conn)
        stamp = db(now)
        encoded: dict[int, list[tuple[Any, ...]]] = {}
        batch: list[tuple[Any, ...]] = []
        written = 0

        def flush() -> None:
            nonlocal batch, written
            self.conn.exec_driver_sql(sql, batch)
            written += len(batch)
            if progress:
                progress(len(batch))
            batch = []

        for pid, slots in plans:
            rows = encoded.get(id(slots))
            if rows is None:
                rows = encoded[id(slots)] = [
                    (p, m, o, c, t, db(d), db(d), db(x), s, 0, stamp)
                    for p, m, o, c, t, d, x, s in slots
                ]
            batch.extend((pid, *row) for row in rows)
            if len(batch) >= CHUNK:
                flush()
        if batch:
            flush()
        return written

    def insert_one(self, patient_id: str, slot: PlanSlot, now: datetime) -> int:
        """Insert one reminder (a copy sent again on purpose); returns its id."""
        protocol, milestone, occurrence, channel, template, due, expires, status = slot
        row = (patient_id, protocol, milestone, occurrence, channel, template)
        values = (*row, due, due, expires, status, 0, now)
        return inserted_id(
            self.conn.execute(
                REMINDERS.insert().values(dict(zip(INSERT_COLUMNS, values, strict=True)))
            )
        )

    def replan(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite the schedule of unsent reminders (rows carry ``id`` and the new values)."""
        if not rows:
            return
        stmt = (
            REMINDERS.update()
            .where(REMINDERS.c.id == sa.bindparam("b_id"))
            # Only unsent rows; an explicit OR because executemany cannot expand IN lists.
            .where(sa.or_(*(REMINDERS.c.status == status for status in sorted(REPLANNABLE))))
            .values(
                template=sa.bindparam("b_template"),
                due_at=sa.bindparam("b_due_at"),
                not_before=sa.bindparam("b_due_at"),
                expires_at=sa.bindparam("b_expires_at"),
                status=sa.bindparam("b_status"),
                updated_at=sa.bindparam("b_updated_at"),
                error=None,
                error_code=None,
                revision=REMINDERS.c.revision + 1,
            )
        )
        for chunk in batches(rows):
            self.conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in chunk])

    def cancel(self, reminder_ids: Sequence[int], now: datetime, reason: str) -> int:
        """Cancel the given reminders if they are still pending; returns how many."""
        return self._cancel(REMINDERS.c.id, reminder_ids, now, reason)

    def cancel_pending_of(self, patient_ids: Sequence[str], now: datetime, reason: str) -> int:
        """Cancel every pending reminder of the given patients; returns how many."""
        return self._cancel(REMINDERS.c.patient_id, patient_ids, now, reason)

    def _cancel(
        self, column: sa.ColumnElement[Any], keys: Sequence[Any], now: datetime, reason: str
    ) -> int:
        count = 0
        for these in among(self.conn, column, keys):
            count += self.conn.execute(
                REMINDERS.update()
                .where(
                    these,
                    REMINDERS.c.status.in_(PENDING),
                    # A notice to the care team outlives the patient's plan.
                    REMINDERS.c.kind == MessageKind.REMINDER,
                )
                .values(
                    status=ReminderStatus.CANCELLED,
                    error=reason,
                    updated_at=now,
                    revision=REMINDERS.c.revision + 1,
                )
            ).rowcount
        return count
