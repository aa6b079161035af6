"""The sync's queries: enrollments, and the bulk writes that plan, re-plan and cancel reminders.

A sync of 100,000 patients writes millions of reminders, never one statement per
reminder: a small sync's rows go to the driver's ``executemany`` in chunks; a large one
uploads each distinct plan once and lets the database expand the rows (``INSERT ...
SELECT``, the uploads through ``COPY`` on PostgreSQL), and into an empty table builds
the indexes after the load instead of row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from reminders.store.known import EnrollmentIndex
from reminders.store.late import LateQueries
from reminders.store.schema import (
    AUDIT,
    CHUNK,
    ENROLLMENTS,
    KEY_COLUMNS,
    REMINDERS,
    active,
    among,
    batches,
    inserted_id,
)

#: (patient, protocol, milestone, occurrence, channel): what makes a reminder unique.
ReminderKey = tuple[str, str, str, int, str]
_INSERT_COLUMNS: Final = (
    *KEY_COLUMNS,
    "template",
    "due_at",
    "not_before",
    "expires_at",
    "status",
    "attempts",
    "updated_at",
)
#: From this many rows on, the database expands a sync's plans itself (see ``_expand``);
#: a sync inserting that many also refreshes the planner's statistics.
BULK_ROWS: Final = 10_000
#: Reminders per ``INSERT ... SELECT`` of ``_expand``: one progress step each.
_EXPAND_ROWS: Final = 100_000
#: The partial indexes that take the rows a sync loads (``planned``, never tried). The
#: others take only tried, sent or failed rows: kept through a load they cost nothing,
#: rebuilt they would cost a scan of the whole table each.
_LOADED_INDEXES: Final = frozenset({"ix_reminders_due"})
#: The temporary tables ``_expand`` loads: each distinct plan's slots, and the patients
#: (in insertion order) with the number of the plan they follow.
_PLAN_SLOTS: Final = "sync_plan_slots"
_PLAN_PATIENTS: Final = "sync_plan_patients"
_SLOT_COLUMNS: Final = (
    "plan_no",
    "slot_no",
    "protocol",
    "milestone",
    "occurrence",
    "channel",
    "template",
    "due_at",
    "expires_at",
    "status",
)
_PATIENT_COLUMNS: Final = ("seq", "patient_id", "plan_no")
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
        rows itself (:meth:`_expand`): no Python object per reminder.
        """
        total = sum(len(slots) for _, slots in plans)
        if not total:
            return 0
        if total >= BULK_ROWS:
            return self._expand(plans, now, progress)
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
            f"INSERT INTO reminders ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608  # constant columns
            f"VALUES ({', '.join([mark] * len(_INSERT_COLUMNS))})"
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

    def _expand(
        self,
        plans: Sequence[tuple[str, Sequence[PlanSlot]]],
        now: datetime,
        progress: Callable[[int], None] | None,
    ) -> int:
        """Upload each distinct plan once and who follows which, then let the database
        expand them: ``INSERT ... SELECT`` from two temporary tables, in the order
        :meth:`_insert_rows` writes (so ids come out the same)."""
        db = datetime_encoder(self.conn)
        numbers: dict[int, int] = {}
        slot_rows: list[tuple[Any, ...]] = []
        patient_rows: list[tuple[Any, ...]] = []
        sizes: list[int] = []
        for pid, slots in plans:
            number = numbers.get(id(slots))
            if number is None:
                number = numbers[id(slots)] = len(numbers)
                slot_rows.extend(
                    (number, i, p, m, o, c, t, db(d), db(x), s)
                    for i, (p, m, o, c, t, d, x, s) in enumerate(slots)
                )
            patient_rows.append((len(patient_rows), pid, number))
            sizes.append(len(slots))
        _create_plan_tables(self.conn)
        _load(self.conn, _PLAN_SLOTS, _SLOT_COLUMNS, slot_rows)
        _load(self.conn, _PLAN_PATIENTS, _PATIENT_COLUMNS, patient_rows)
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO reminders ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608  # constant names
            "SELECT p.patient_id, s.protocol, s.milestone, s.occurrence, s.channel, s.template, "
            f"s.due_at, s.due_at, s.expires_at, s.status, 0, {mark} "
            f"FROM {_PLAN_PATIENTS} p JOIN {_PLAN_SLOTS} s ON s.plan_no = p.plan_no "
            f"WHERE p.seq >= {mark} AND p.seq < {mark} ORDER BY p.seq, s.slot_no"
        )
        stamp = db(now)
        written = start = rows = 0
        rebuild = _drop_indexes(self.conn)
        for end, size in enumerate(sizes, 1):
            rows += size
            if rows >= _EXPAND_ROWS or end == len(sizes):
                self.conn.exec_driver_sql(sql, (stamp, start, end))
                written += rows
                if progress:
                    progress(rows)
                start, rows = end, 0
        _drop_plan_tables(self.conn)
        for statement in rebuild:
            self.conn.execute(statement)
        return written

    def insert_one(self, patient_id: str, slot: PlanSlot, now: datetime) -> int:
        """Insert one reminder (a copy sent again on purpose); returns its id."""
        protocol, milestone, occurrence, channel, template, due, expires, status = slot
        row = (patient_id, protocol, milestone, occurrence, channel, template)
        values = (*row, due, due, expires, status, 0, now)
        return inserted_id(
            self.conn.execute(
                REMINDERS.insert().values(dict(zip(_INSERT_COLUMNS, values, strict=True)))
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


def _create_plan_tables(conn: Connection) -> None:
    """The temporary tables of ``_expand``, gone at the end of the transaction either way."""
    if conn.dialect.name == "postgresql":
        stamp, tail = "timestamptz", " ON COMMIT DROP"
    else:
        stamp, tail = "text", " WITHOUT ROWID"  # datetimes as SQLite's DATETIME text
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {_PLAN_SLOTS} ("
        "plan_no integer NOT NULL, slot_no integer NOT NULL, protocol text NOT NULL, "
        "milestone text NOT NULL, occurrence integer NOT NULL, channel text NOT NULL, "
        f"template text NOT NULL, due_at {stamp} NOT NULL, expires_at {stamp} NOT NULL, "
        f"status text NOT NULL, PRIMARY KEY (plan_no, slot_no)){tail}"
    )
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {_PLAN_PATIENTS} (seq integer PRIMARY KEY, "
        f"patient_id text NOT NULL, plan_no integer NOT NULL)"
        + (" ON COMMIT DROP" if conn.dialect.name == "postgresql" else "")
    )


def _drop_plan_tables(conn: Connection) -> None:
    """Drop them now (PostgreSQL would at commit; SQLite keeps them for the connection)."""
    for table in (_PLAN_PATIENTS, _PLAN_SLOTS):
        conn.exec_driver_sql(f"DROP TABLE {table}")


def _load(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Bulk-load ``rows`` into a temporary table: ``COPY FROM STDIN`` on PostgreSQL."""
    names = ", ".join(columns)
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.exec_driver_sql(f"ANALYZE {table}")
        return
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608


def _drop_indexes(conn: Connection) -> list[sa.ExecutableDDLElement]:
    """Drop the unique key (PostgreSQL) and the due index of an empty ``reminders`` table for
    a bulk load; returns what rebuilds them.

    Building an index once over millions of rows (a sort) costs much less than keeping it
    up to date row by row (the other partial indexes take none of the loaded rows). The drop is part of the sync's transaction: a failed load
    rolls it back with the rows. On PostgreSQL it takes an ACCESS EXCLUSIVE lock on
    ``reminders`` until the sync commits, which is why only a load into an empty table
    (an initial load, nothing yet to claim) does it: a routine sync while other instances
    dispatch keeps the indexes. SQLite cannot drop the unique key (it is part of the
    table), and keeps it: rows arrive in key order, so appending to it is cheap.
    """
    if conn.execute(sa.select(REMINDERS.c.id).limit(1)).first() is not None:
        return []
    drops: list[sa.ExecutableDDLElement] = []
    rebuild: list[sa.ExecutableDDLElement] = []
    if conn.dialect.name == "postgresql":
        for constraint in REMINDERS.constraints:
            if isinstance(constraint, sa.UniqueConstraint):
                drops.append(sa.schema.DropConstraint(constraint))
                rebuild.append(sa.schema.AddConstraint(constraint))
    for index in sorted(REMINDERS.indexes, key=lambda ix: str(ix.name)):
        if index.name not in _LOADED_INDEXES:
            continue
        drops.append(sa.schema.DropIndex(index))
        rebuild.append(sa.schema.CreateIndex(index))
    for statement in drops:
        conn.execute(statement)
    return rebuild
