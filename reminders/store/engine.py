"""The connection to the database: engine, dialect set-up and transactions.

This module knows nothing of reminders (as procrastinate's connector knows nothing of
jobs). SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so two writers queue on the lock instead of failing half-way.

A :class:`Transaction` hands out the queries of each aggregate, one module each:
``tx.enrollments`` (sync), ``tx.outbox`` (claim, expire, leases), ``tx.attempts``,
``tx.contacts`` (opt-outs, inbound texts), ``tx.views`` (timeline, summary, gauges),
``tx.users`` (dashboard accounts and sessions), and appends audit records with :meth:`Transaction.audit`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reminders import logs
from reminders.errors import StoreError
from reminders.store.attempts import AttemptQueries
from reminders.store.bulk import insert_many
from reminders.store.checkins import AlertQueries, CheckInQueries
from reminders.store.contacts import ContactQueries
from reminders.store.dashboard import DashboardQueries
from reminders.store.dashboard_alerts import AlertViews
from reminders.store.enrollments import EnrollmentQueries
from reminders.store.late import LateQueries
from reminders.store.outbox import OutboxQueries
from reminders.store.reports import ReportQueries
from reminders.store.schema import AUDIT
from reminders.store.users import UserQueries
from reminders.store.views import ViewQueries

log = logs.get("reminders.store")

#: How long a SQLite connection waits for another's lock (ms).
_BUSY_MS: Final = 30_000
#: SQLite page cache per connection, and while a sync runs (KiB).
_CACHE_KIB: Final = 2048
_BULK_CACHE_KIB: Final = 65536
#: SQLite's automatic checkpoint (its default): by a commit that leaves the log this many
#: pages long. A sync's commit leaves it to a thread (see :meth:`Store.write`).
_AUTOCHECKPOINT_PAGES: Final = 1000
#: pg_advisory_xact_lock key of the sync ("sync" in ASCII).
_SYNC_LOCK: Final = 0x73796E63


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" hook below issues BEGIN itself,
    # so write transactions can take the lock up front (BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
    _wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # 2 MiB of page cache per connection (one per worker thread); a sync raises its
    # own connection's to 64 MiB while it updates million-row indexes (Store.sync).
    cursor.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
    cursor.close()


def _wal(cursor: Any) -> None:
    """Switch the file to WAL (it stays so). Several first connections to a new file (the
    service's threads, two instances starting) race to switch it, and SQLite answers the
    losers SQLITE_BUSY at once, without its busy handler: 13 of 150 starts of four threads
    failed so. Try again until the busy timeout."""
    deadline = time.monotonic() + _BUSY_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    # No JIT: every query of this service is short, and compiling one costs more than it
    # saves (the dashboard's last-reached query spent tens of ms in JIT at 100,000 patients).
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()  # a SET in a transaction that rolls back would be undone


def _pragmas(conn: Connection, **values: int | None) -> None:
    """Set SQLite pragmas of this connection (``None``: run it without a value), through the
    driver: outside a transaction, which SQLAlchemy would begin first."""
    for name, value in values.items():
        statement = f"PRAGMA {name}" if value is None else f"PRAGMA {name}={value}"
        conn.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]


def _sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _create_private(url: str) -> None:
    """Create a SQLite database file that does not exist yet as an empty file of mode 0600.

    SQLite creates a new database with the process's umask (0644 under the usual 022) and
    gives its ``-wal`` and ``-shm`` the database file's mode, so a database created here
    keeps all three readable by their owner only, whatever the umask. An existing file is
    left as its operator made it; anything but a plain file path (memory, a ``file:``
    URI) is left to SQLite, and so is a path SQLite will refuse (no such folder).
    """
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return  # it exists, or SQLite will say why it cannot be opened
    try:
        os.fchmod(fd, 0o600)  # a umask that removes the owner's own bits is undone too
    finally:
        os.close(fd)


def default_database_url(config_dir: Path) -> str:
    """``sqlite:///<config_dir>/reminders.db``."""
    return f"sqlite:///{(config_dir / 'reminders.db').resolve()}"


class Store:
    """One database: SQLite by default, PostgreSQL for several instances."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        #: SQLAlchemy URL (secrets in it are never printed; see :meth:`safe_url`).
        self.url = url
        try:
            # A failed statement's parameters are patient data: never in an error or a log.
            self.engine: Engine = sa.create_engine(url, future=True, hide_parameters=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot use database {self.safe_url}: {exc}") from None
        #: ``sqlite`` or ``postgresql``.
        self.dialect = self.engine.dialect.name
        #: The checkpoints after syncs (SQLite) that may still run.
        self._folds: list[threading.Thread] = []
        if self.dialect == "sqlite":
            _create_private(url)
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        elif self.dialect == "postgresql":
            sa.event.listen(self.engine, "connect", _postgresql_session)
        if migrate:
            from reminders.store import migrate as migrations  # noqa: PLC0415  # they import this package

            migrations.upgrade(self.engine)  # its errors are StoreErrors already

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Release every pooled connection, after the checkpoints of syncs."""
        for fold in self._folds:
            fold.join()
        self.engine.dispose()

    @contextmanager
    def write(self, *, failure: str = "") -> Iterator[Transaction]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success.

        A database error inside it rolls it back and is raised as StoreError, its
        message starting with ``failure`` (what did not happen) when given.
        """
        with (
            self._errors(failure),
            self.engine.connect().execution_options(write=True) as conn,
            conn.begin(),
        ):
            yield Transaction(conn)

    @contextmanager
    def sync(self, *, failure: str = "") -> Iterator[Transaction]:
        """The write transaction of a sync: one at a time across instances (PostgreSQL's
        advisory lock; SQLite's write lock does it), set up for bulk work.

        On SQLite the connection has a large page cache and a helper thread for sorting
        while it lasts, and its commit leaves the write-ahead log as it is: a thread folds
        it into the database file afterwards, as PostgreSQL's checkpointer does (the commit
        of a million-row load otherwise waits for the whole copy: 3 s of a 19 s first sync
        of 100,000 patients). The data is committed either way. Afterwards the connection
        is as every other: small cache, automatic checkpoints.
        """
        sqlite = self.dialect == "sqlite"
        with self._errors(failure), self.engine.connect().execution_options(write=True) as conn:
            if sqlite:  # through the driver: SQLAlchemy would begin a transaction first
                _pragmas(conn, wal_autocheckpoint=0, cache_size=-_BULK_CACHE_KIB, threads=1)
            try:
                with conn.begin():
                    if not sqlite:
                        conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK}
                        )
                    yield Transaction(conn)
            finally:
                if sqlite:
                    _pragmas(
                        conn,
                        wal_autocheckpoint=_AUTOCHECKPOINT_PAGES,
                        cache_size=-_CACHE_KIB,
                        threads=0,
                        shrink_memory=None,
                    )
        if sqlite:
            self._fold_soon()

    def _fold_soon(self) -> None:
        """Checkpoint the write-ahead log in a thread, PASSIVE: it never waits for, nor
        blocks, a reader or a writer (what it cannot copy yet, a later checkpoint does)."""

        def fold() -> None:
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except sa.exc.SQLAlchemyError as exc:
                log.warning("database.checkpoint_failed", error=describe(exc))

        self._folds = [t for t in self._folds if t.is_alive()]
        self._folds.append(threading.Thread(target=fold, name="wal-checkpoint", daemon=True))
        self._folds[-1].start()

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A read-only transaction; a database error inside it is raised as StoreError."""
        with self._errors(), self.engine.connect() as conn, conn.begin():
            yield Transaction(conn)

    @contextmanager
    def _errors(self, failure: str = "") -> Iterator[None]:
        """Database errors as StoreError saying what failed, never with the statement's values."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:  # the driver's errors, and the pool's
            lead = f"{failure}: " if failure else ""
            raise StoreError(f"{lead}database {self.safe_url}: {describe(exc)}") from None

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log back into the database file (no-op elsewhere)."""
        if self.dialect == "sqlite":
            with self._errors(), self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        with self._errors("unreachable"), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


def describe(exc: sa.exc.SQLAlchemyError) -> str:
    """What the database said, without the data: the driver's error class and first line.

    SQLAlchemy's own text adds the statement and its parameters, and PostgreSQL's detail
    lines repeat the failing row ("Failing row contains (P-1001, Dana, ...)"), so both are
    left out; so is the first line of a data exception (SQLSTATE class 22), which quotes
    the value it could not take, and the message of a value that could not even be bound.
    Errors of SQLAlchemy's own (a pool timeout) hold no data: their first line is kept.
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        if isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
            return f"{type(exc.orig).__name__}: a value could not be sent to the database"
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"
    orig = exc.orig
    kind = type(orig).__name__
    state = getattr(orig, "sqlstate", None) or ""
    if isinstance(exc, sa.exc.DataError) or state.startswith("22"):
        return f"{kind} (SQLSTATE {state or 'unknown'}): a value does not fit its column"
    lines = str(orig).strip().splitlines()
    first = lines[0] if lines else "no message"
    # SQLite names its result codes (SQLITE_FULL, SQLITE_IOERR_WRITE, SQLITE_BUSY).
    code = f"SQLSTATE {state}" if state else getattr(orig, "sqlite_errorname", "")
    hint = next((h for c, h in _HINTS.items() if code == c or code.startswith(f"{c}_")), "")
    return f"{kind}{f' ({code})' if code else ''}: {first}{f' ({hint})' if hint else ''}"


#: What a person should do about the database errors that are theirs to fix.
_HINTS: Final = {
    "SQLITE_FULL": "the disk holding the database is full: free space, then run it again",
    "53100": "the database server's disk is full: free space on it, then run it again",
    "SQLITE_READONLY": "the database file or its folder is read-only for this user",
    "SQLITE_CANTOPEN": "the database file or its folder cannot be opened by this user",
}


class Transaction:
    """One transaction, and the queries of each aggregate inside it."""

    def __init__(self, conn: Connection) -> None:
        #: The connection the transaction runs on.
        self.conn = conn
        #: Enrollments and the sync's bulk writes of reminders.
        self.enrollments = EnrollmentQueries(conn)
        #: Claims, leases, expiry and status changes of reminders.
        self.outbox = OutboxQueries(conn)
        #: Delivery attempts.
        self.attempts = AttemptQueries(conn)
        #: Opt-outs and inbound texts.
        self.contacts = ContactQueries(conn)
        #: What people read: enrollments, timelines, summaries, gauges, the audit trail.
        self.views = ViewQueries(conn)
        #: Dashboard accounts, sessions and failed sign-ins.
        self.users = UserQueries(conn)
        #: What the dashboard's pages read.
        self.dashboard = DashboardQueries(conn)
        #: Check-ins asked and answered.
        self.checkins = CheckInQueries(conn)
        #: Alerts raised, acknowledged and resolved.
        self.alerts = AlertQueries(conn)
        #: Check-ins and alerts aggregated for ``reminders report``.
        self.reports = ReportQueries(conn)
        #: What the dashboard's pages read of check-ins and alerts.
        self.dashboard_alerts = AlertViews(conn)
        #: Late enrollment's expired milestones, one record per shared plan.
        self.late = LateQueries(conn)

    def audit(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Append audit events: dicts with ``at``, ``kind`` and optional ids and ``detail``."""
        rows = [
            {
                "at": e["at"],
                "kind": e["kind"],
                "patient_id": e.get("patient_id"),
                "reminder_id": e.get("reminder_id"),
                "detail": json.dumps(e.get("detail", {}), sort_keys=True, default=str),
            }
            for e in events
        ]
        insert_many(self.conn, AUDIT, rows)

    # -- bulk work ------------------------------------------------------------------------

    def analyze(self) -> None:
        """Refresh the planner's statistics after a bulk load (PostgreSQL; autovacuum may lag or be off)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.text("ANALYZE reminders"))
            self.conn.execute(sa.text("ANALYZE enrollments"))
