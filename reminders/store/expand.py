"""A sync's bulk load of reminders: the database expands each distinct plan itself.

100,000 patients follow a few thousand distinct plans, so a large sync uploads each plan
once and who follows which into two temporary tables, and ``INSERT ... SELECT`` writes
the millions of rows: no Python object per reminder. A load into an empty table drops
the indexes first and builds them once after (see :func:`_drop_indexes`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reminders.planning import PlanSlot
from reminders.store.bulk import ByIdentity, copy_rows, datetime_encoder
from reminders.store.schema import KEY_COLUMNS, REMINDERS

#: The columns a sync writes of each reminder it plans.
INSERT_COLUMNS: Final = (
    *KEY_COLUMNS,
    "template",
    "due_at",
    "not_before",
    "expires_at",
    "status",
    "attempts",
    "updated_at",
)

#: Reminders per ``INSERT ... SELECT`` of :func:`expand`: one progress step each.
EXPAND_ROWS: Final = 100_000
#: The partial indexes that take the rows a sync loads (``planned``, never tried). The
#: others take only tried, sent or failed rows. SQLite keeps those through a load (they
#: cost it 0.7 s of 2.3 million rows, rebuilding them 1.5 s); PostgreSQL rebuilds them
#: too (they cost it 1.9 s, rebuilding them 0.8 s).
LOADED_INDEXES: Final = frozenset({"ix_reminders_due"})
#: The temporary tables :func:`expand` loads: each distinct plan's slots, and the patients
#: (in insertion order) with the number of the plan they follow.
PLAN_SLOTS: Final = "sync_plan_slots"
PLAN_PATIENTS: Final = "sync_plan_patients"
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


@dataclass
class Load:
    """What the loads of one sync share (see :meth:`~reminders.store.enrollments.EnrollmentQueries.loading`)."""

    #: Each distinct plan uploaded: its number in the temporary table.
    plans: ByIdentity[int] = field(default_factory=ByIdentity)
    #: Whether the temporary tables exist.
    tables: bool = False
    #: What rebuilds the indexes the first load into the empty table dropped.
    rebuild: list[sa.Executable] = field(default_factory=list)


def expand(
    conn: Connection,
    load: Load,
    plans: Sequence[tuple[str, Sequence[PlanSlot]]],
    now: datetime,
    progress: Callable[[int], None] | None,
) -> int:
    """Upload each distinct plan once and who follows which, then let the database
    expand them: ``INSERT ... SELECT`` from two temporary tables, in the order
    :meth:`~reminders.store.enrollments.EnrollmentQueries.insert_plans` writes row by row (so ids come out the same)."""
    db = datetime_encoder(conn)
    slot_rows: list[tuple[Any, ...]] = []
    patient_rows: list[tuple[Any, ...]] = []
    sizes: list[int] = []
    for pid, slots in plans:
        number = load.plans.get(slots)
        if number is None:
            number = len(load.plans)
            load.plans.put(slots, number)
            slot_rows.extend(
                (number, i, p, m, o, c, t, db(d), db(x), s)
                for i, (p, m, o, c, t, d, x, s) in enumerate(slots)
            )
        patient_rows.append((len(patient_rows), pid, number))
        sizes.append(len(slots))
    if load.tables:
        conn.exec_driver_sql(f"DELETE FROM {PLAN_PATIENTS}")  # noqa: S608  # a constant
    else:
        _create_plan_tables(conn)
        load.tables = True
        load.rebuild = _drop_indexes(conn)
    _load(conn, PLAN_SLOTS, _SLOT_COLUMNS, slot_rows)
    _load(conn, PLAN_PATIENTS, _PATIENT_COLUMNS, patient_rows)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO reminders ({', '.join(INSERT_COLUMNS)}) "  # noqa: S608  # constant names
        "SELECT p.patient_id, s.protocol, s.milestone, s.occurrence, s.channel, s.template, "
        f"s.due_at, s.due_at, s.expires_at, s.status, 0, {mark} "
        f"FROM {PLAN_PATIENTS} p JOIN {PLAN_SLOTS} s ON s.plan_no = p.plan_no "
        f"WHERE p.seq >= {mark} AND p.seq < {mark} ORDER BY p.seq, s.slot_no"
    )
    stamp = db(now)
    written = start = rows = 0
    for end, size in enumerate(sizes, 1):
        rows += size
        if rows >= EXPAND_ROWS or end == len(sizes):
            conn.exec_driver_sql(sql, (stamp, start, end))
            written += rows
            if progress:
                progress(rows)
            start, rows = end, 0
    return written


def finish(conn: Connection, load: Load) -> None:
    """Drop the temporary tables of the loads, and rebuild the indexes they dropped."""
    if load.tables:
        _drop_plan_tables(conn)
    for statement in load.rebuild:
        conn.execute(statement)


def _create_plan_tables(conn: Connection) -> None:
    """The temporary tables of :func:`expand`, gone at the end of the transaction either way."""
    if conn.dialect.name == "postgresql":
        stamp, tail = "timestamptz", " ON COMMIT DROP"
    else:
        stamp, tail = "text", " WITHOUT ROWID"  # datetimes as SQLite's DATETIME text
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {PLAN_SLOTS} ("
        "plan_no integer NOT NULL, slot_no integer NOT NULL, protocol text NOT NULL, "
        "milestone text NOT NULL, occurrence integer NOT NULL, channel text NOT NULL, "
        f"template text NOT NULL, due_at {stamp} NOT NULL, expires_at {stamp} NOT NULL, "
        f"status text NOT NULL, PRIMARY KEY (plan_no, slot_no)){tail}"
    )
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {PLAN_PATIENTS} (seq integer PRIMARY KEY, "
        f"patient_id text NOT NULL, plan_no integer NOT NULL)"
        + (" ON COMMIT DROP" if conn.dialect.name == "postgresql" else "")
    )


def _drop_plan_tables(conn: Connection) -> None:
    """Drop them now (PostgreSQL would at commit; SQLite keeps them for the connection)."""
    for table in (PLAN_PATIENTS, PLAN_SLOTS):
        conn.exec_driver_sql(f"DROP TABLE {table}")


def _load(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Bulk-load ``rows`` into a temporary table: ``COPY FROM STDIN`` on PostgreSQL."""
    names = ", ".join(columns)
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        copy_rows(conn, table, columns, rows)
        conn.exec_driver_sql(f"ANALYZE {table}")
        return
    marks = ", ".join("?" * len(columns))
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608


def _drop_indexes(conn: Connection) -> list[sa.Executable]:
    """Drop the keys and every partial index (PostgreSQL), or the due index (SQLite),
    of an empty ``reminders`` table for a bulk load; returns what rebuilds them.

    Building an index once over millions of rows (a sort) costs much less than keeping it
    up to date row by row (see :data:`LOADED_INDEXES`). The drop is part of the sync's transaction: a failed load
    rolls it back with the rows. On PostgreSQL it takes an ACCESS EXCLUSIVE lock on
    ``reminders`` until the sync commits, which is why only a load into an empty table
    (an initial load, nothing yet to claim) does it: a routine sync while other instances
    dispatch keeps the indexes. SQLite cannot drop the unique key (it is part of the
    table), and keeps it: rows arrive in key order, so appending to it is cheap.
    """
    if conn.execute(sa.select(REMINDERS.c.id).limit(1)).first() is not None:
        return []
    drops: list[sa.Executable] = []
    rebuild: list[sa.Executable] = []
    if conn.dialect.name == "postgresql":
        for constraint in REMINDERS.constraints:
            if isinstance(constraint, sa.UniqueConstraint):
                drops.append(sa.schema.DropConstraint(constraint))
                rebuild.append(sa.schema.AddConstraint(constraint))
        # The primary key too (no foreign key names it): 1.2 s of 2.3 million rows kept up
        # to date, 0.4 s built after. The ids still come from the column's sequence.
        key = sa.inspect(conn).get_pk_constraint(REMINDERS.name)["name"]
        drops.append(sa.text(f'ALTER TABLE {REMINDERS.name} DROP CONSTRAINT "{key}"'))
        rebuild.append(
            sa.text(f'ALTER TABLE {REMINDERS.name} ADD CONSTRAINT "{key}" PRIMARY KEY (id)')
        )
    for index in sorted(REMINDERS.indexes, key=lambda ix: str(ix.name)):
        if index.name not in LOADED_INDEXES and conn.dialect.name != "postgresql":
            continue
        drops.append(sa.schema.DropIndex(index))
        rebuild.append(sa.schema.CreateIndex(index))
    for statement in drops:
        conn.execute(statement)
    return rebuild
