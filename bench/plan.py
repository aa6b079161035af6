"""Planning: N patients enrolled and planned from CSV into a fresh store, then an unchanged re-sync.

SPEC section 10: 100,000 patients on the shipped protocol from CSV in <= 15 s; an
unchanged re-sync in <= 3 s. Times ``sync_patients`` end to end (reading and validating
the CSV, planning, inserting, committing); creating the empty schema is not timed.

    .venv/bin/python -m bench.plan [--postgres] [--patients N] [--profile]
"""

from __future__ import annotations

import cProfile
import pstats
import resource
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.common import (
    config_dir,
    database,
    figure,
    header,
    note,
    parser,
    workdir,
    write_patients_csv,
)
from reminders.config import load_schedules
from reminders.store import Store
from reminders.store.expand import LOADED_INDEXES
from reminders.store.schema import REMINDERS
from reminders.sync import sync_patients

PLAN_TARGET = 15.0
RESYNC_TARGET = 3.0
FULL = 100_000


def main() -> int:
    p = parser(__doc__.splitlines()[0], patients=FULL)
    p.add_argument("--profile", action="store_true", help="print a cProfile of both syncs")
    args = p.parse_args()
    n = args.patients
    header(f"bench/plan.py: {n:,} patients from CSV", args.postgres)
    with workdir("plan") as tmp, database(args.postgres, tmp) as url:
        cfg = config_dir(tmp)
        csv_path = tmp / "patients.csv"
        now = datetime.now(UTC)
        write_patients_csv(csv_path, n, start=now.date())
        schedules = load_schedules(cfg)
        store = Store(url)  # the empty, migrated schema: not timed
        profiler = cProfile.Profile() if args.profile else None
        try:
            if profiler:
                profiler.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            first = sync_patients(store, schedules, csv_path, now)
            t1, c1 = time.perf_counter(), time.process_time()
            again = sync_patients(store, schedules, csv_path, now)
            t2 = time.perf_counter()
            if profiler:
                profiler.disable()
            with store.read() as tx:
                rows = tx.conn.execute(sa.text("SELECT count(*) FROM reminders")).scalar_one()
                by_status = tx.views.reminder_counts()  # with the late histories' slots
                enrolled = tx.conn.execute(sa.text("SELECT count(*) FROM enrollments")).scalar()
        finally:
            store.close()
        ceiling = None if args.postgres else insert_ceiling(url, tmp / "ceiling.db")
    stored = sum(by_status.values())
    plan_s, resync_s = t1 - t0, t2 - t1
    figure(
        f"plan {n:,} patients from CSV",
        f"{plan_s:.2f} s",
        f"<= {PLAN_TARGET * n / FULL:.4g} s",
        plan_s <= PLAN_TARGET * n / FULL,
    )
    figure(
        "unchanged re-sync",
        f"{resync_s:.2f} s",
        f"<= {RESYNC_TARGET * n / FULL:.4g} s",
        resync_s <= RESYNC_TARGET * n / FULL,
    )
    figure("CPU of this process in the first sync", f"{c1 - c0:.2f} s", "-", None)
    if ceiling is not None:
        figure("raw insert ceiling for the same rows", f"{ceiling:.2f} s", "-", None)
        figure("plan / raw insert ceiling", f"{plan_s / ceiling:.1f}x", "-", None)
    figure("reminders stored", f"{stored:,}", "-", None)
    figure("of which reminder rows", f"{rows:,}", "-", None)
    figure("patients enrolled", f"{enrolled:,}", "-", None)
    figure("reminders planned per second", f"{stored / plan_s:,.0f}/s", "-", None)
    figure(
        "peak RSS of this process",
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        "-",
        None,
    )
    note(
        "by status: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(by_status.items()))
        + f"; first sync enrolled {len(first.enrolled):,}, re-sync unchanged {again.unchanged:,}"
    )
    if n != FULL:
        note(f"the SPEC targets are for {FULL:,} patients; scaled linearly to {n:,} here")
    if not (len(first.enrolled) == n and again.unchanged == n and not again.changed):
        print("  ERROR: the syncs did not do what was expected")
        return 1
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return 0


def insert_ceiling(url: str, path: Path) -> float:
    """Seconds SQLite alone takes to write the stored reminders again, same table, same indexes,
    loaded as the sync loads them: the index that takes the loaded rows built after them, and
    the commit without its automatic checkpoint (the sync leaves it to a thread).

    ``INSERT ... SELECT`` from the synced database into a fresh one with only the
    ``reminders`` table (its declared unique key and indexes, the service's pragmas), in
    one transaction, commit included: no Python per row, no CSV, no planning.
    """
    source = sa.engine.make_url(url).database
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        pragmas = ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "threads=1")
        for pragma in (*pragmas, "wal_autocheckpoint=0"):
            conn.execute(f"PRAGMA {pragma}")
        dialect = sa.create_engine("sqlite://").dialect
        conn.execute(str(sa.schema.CreateTable(REMINDERS).compile(dialect=dialect)))
        later = [ix for ix in REMINDERS.indexes if ix.name in LOADED_INDEXES]
        for index in REMINDERS.indexes:
            if index not in later:
                conn.execute(str(sa.schema.CreateIndex(index).compile(dialect=dialect)))
        conn.execute("ATTACH DATABASE ? AS synced", (source,))
        columns = ", ".join(c.name for c in REMINDERS.columns)
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            f"INSERT INTO main.reminders ({columns}) "  # noqa: S608  # declared column names
            f"SELECT {columns} FROM synced.reminders ORDER BY id"
        )
        for index in later:
            conn.execute(str(sa.schema.CreateIndex(index).compile(dialect=dialect)))
        conn.execute("COMMIT")
        return time.perf_counter() - t0
    finally:
        conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
