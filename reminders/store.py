"""The outbox: every table, every query and every transaction of the project.

Nothing else in the package builds SQL. Tables are declared with SQLModel; bulk work
(sync of 100,000 patients, batch claims) goes through SQLAlchemy Core with
``executemany`` so it never costs a query per reminder.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so two writers queue on the lock instead of failing half-way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from reminders.errors import StoreError, UnknownPatient
from reminders.models import REPLANNABLE_STATUSES

#: Rows per executemany batch: large enough to amortise, small enough for a progress bar.
CHUNK: Final = 5_000
#: Bind parameters per IN (...) list, under SQLite's limit.
IN_CHUNK: Final = 900


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them as naive UTC text."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the store; make it aware at the boundary")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class Enrollment(SQLModel, table=True):
    """One patient on one protocol."""

    __tablename__ = "enrollments"

    patient_id: str = Field(primary_key=True)
    first_name: str
    last_name: str = ""
    phone: str | None = None
    email: str | None = None
    surgery_date: date
    protocol: str
    timezone: str
    language: str
    channels: str  # comma-separated
    status: str = Field(index=True)
    attributes: str = "{}"  # JSON object
    source_hash: str = ""  # digest of the raw record + schedules fingerprint
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class Reminder(SQLModel, table=True):
    """One message to one patient for one milestone occurrence on one channel."""

    __tablename__ = "reminders"
    __table_args__ = (
        sa.UniqueConstraint(
            "patient_id", "protocol", "milestone", "occurrence", "channel", name="uq_reminder_key"
        ),
        # Only planned rows are claimed, only sending rows hold leases (migration 0002).
        sa.Index(
            "ix_reminders_due",
            "not_before",
            sqlite_where=sa.text("status = 'planned'"),
            postgresql_where=sa.text("status = 'planned'"),
        ),
        sa.Index(
            "ix_reminders_leased",
            "lease_until",
            sqlite_where=sa.text("status = 'sending'"),
            postgresql_where=sa.text("status = 'sending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: str
    protocol: str
    milestone: str
    occurrence: int
    channel: str
    template: str
    due_at: datetime = _utc()
    not_before: datetime = _utc()  # due_at, pushed later by send windows and retries
    expires_at: datetime = _utc()
    status: str
    attempts: int = 0
    lease_owner: str | None = None
    lease_until: datetime | None = _utc(default=None)
    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    sent_at: datetime | None = _utc(default=None)
    updated_at: datetime = _utc()


class Attempt(SQLModel, table=True):
    """One try at delivering a reminder, written before the provider is called."""

    __tablename__ = "attempts"

    id: int | None = Field(default=None, primary_key=True)
    reminder_id: int = Field(index=True)
    number: int
    owner: str
    started_at: datetime = _utc()
    finished_at: datetime | None = _utc(default=None)
    outcome: str = Field(
        default="pending", index=True
    )  # pending|sent|transient|permanent|in_doubt[:...]
    body_digest: str | None = None  # digest of the exact text sent: reconciliation matches on it
    provider_id: str | None = None
    error_code: str | None = None
    error: str | None = None


class OptOut(SQLModel, table=True):
    """An address that asked not to be contacted on a channel."""

    __tablename__ = "opt_outs"

    channel: str = Field(primary_key=True)
    address: str = Field(primary_key=True)
    opted_out: bool = True
    source: str = ""
    changed_at: datetime = _utc()


class AuditEvent(SQLModel, table=True):
    """An append-only record of every send, status change, opt-out and config change."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(index=True)
    kind: str
    patient_id: str | None = Field(default=None, index=True)
    reminder_id: int | None = None
    detail: str = "{}"  # JSON object; never message bodies or contact details


class InboundMessage(SQLModel, table=True):
    """A text a patient sent to the clinic's number (STOP, START, HELP or free text)."""

    __tablename__ = "inbound_messages"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(index=True)
    sender: str  # E.164
    body: str  # PHI: kept in the database only, never logged
    kind: str  # stop | start | help | other
    provider_id: str | None = Field(
        default=None, unique=True
    )  # Twilio MessageSid: duplicates ignored
    patient_ids: str = ""  # comma-separated enrollments with that number
    forwarded: bool = False


_T = SQLModel.metadata.tables
ENROLLMENTS: Final = _T["enrollments"]
REMINDERS: Final = _T["reminders"]
ATTEMPTS: Final = _T["attempts"]
OPT_OUTS: Final = _T["opt_outs"]
AUDIT: Final = _T["audit_events"]
INBOUND: Final = _T["inbound_messages"]

#: Twilio MessageStatus -> reminder status; the rank orders them so late callbacks never regress.
CALLBACK_STATUS: Final = {
    "accepted": ("sent", 1),
    "scheduled": ("sent", 1),
    "queued": ("sent", 1),
    "sending": ("sent", 1),
    "sent": ("sent", 1),
    "delivered": ("delivered", 2),
    "read": ("delivered", 2),
    "undelivered": ("failed", 2),
    "failed": ("failed", 2),
    "canceled": ("failed", 2),
}
_RANK: Final = {"planned": 0, "sending": 0, "sent": 1, "delivered": 2, "failed": 2}

#: SQLite page cache per connection, and while a sync runs (KiB).
_CACHE_KIB: Final = 2048
_BULK_CACHE_KIB: Final = 65536
#: pg_advisory_xact_lock key of the sync ("sync" in ASCII).
_SYNC_LOCK: Final = 0x73796E63
#: One planned occurrence on one channel, shared by every patient whose plan is the same:
#: protocol, milestone, occurrence, channel, template, due_at, expires_at, status.
PlanSlot = tuple[str, str, int, str, str, datetime, datetime, str]
_INSERT_COLUMNS: Final = (
    "patient_id",
    "protocol",
    "milestone",
    "occurrence",
    "channel",
    "template",
    "due_at",
    "not_before",
    "expires_at",
    "status",
    "attempts",
    "updated_at",
)
#: How SQLAlchemy stores DATETIME on SQLite; raw inserts must write the same text.
_SQLITE_DATETIME: Final = "%Y-%m-%d %H:%M:%S.%f"

#: Statuses of reminders that are still waiting to go out.
PENDING: Final = ("planned",)


@dataclass(frozen=True, slots=True)
class StoredEnrollment:
    """What a sync needs to know of an existing enrollment."""

    #: Patient id.
    patient_id: str
    #: Digest of the record it was made from.
    source_hash: str
    #: Enrollment status.
    status: str


@dataclass(frozen=True, slots=True)
class StoredReminder:
    """What a re-plan needs to know of an existing reminder."""

    #: Row id.
    id: int
    #: (patient, protocol, milestone, occurrence, channel).
    key: tuple[str, str, str, int, str]
    #: Current status.
    status: str
    #: Planned due time.
    due_at: datetime
    #: Expiry.
    expires_at: datetime
    #: Template.
    template: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """A reminder leased to one dispatcher, with what it needs to render and address it."""

    #: Row id.
    id: int
    #: Patient id.
    patient_id: str
    #: Protocol id.
    protocol: str
    #: Milestone id.
    milestone: str
    #: Occurrence number.
    occurrence: int
    #: ``sms`` or ``email``.
    channel: str
    #: Template name.
    template: str
    #: Planned due time.
    due_at: datetime
    #: Never send after this.
    expires_at: datetime
    #: Attempts made before this one.
    attempts: int
    #: Patient's first name.
    first_name: str
    #: Patient's last name.
    last_name: str
    #: E.164 or email address for the channel.
    address: str | None
    #: Anchor date.
    surgery_date: date
    #: IANA zone.
    timezone: str
    #: Template language.
    language: str
    #: Start of the earliest attempt that may have reached the provider, unresolved.
    in_doubt_since: datetime | None = None
    #: Digests of the texts those in-doubt attempts sent.
    in_doubt_digests: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One row of a patient's timeline."""

    #: Row id.
    id: int
    #: Patient id.
    patient_id: str
    #: Protocol id.
    protocol: str
    #: Milestone id.
    milestone: str
    #: Occurrence.
    occurrence: int
    #: Channel.
    channel: str
    #: Template.
    template: str
    #: Planned due time (UTC).
    due_at: datetime
    #: Next time it may be tried (UTC).
    not_before: datetime
    #: Expiry (UTC).
    expires_at: datetime
    #: Status.
    status: str
    #: Attempts made.
    attempts: int
    #: Provider id of the accepted attempt.
    provider_id: str | None
    #: Last error code.
    error_code: str | None
    #: Last error text.
    error: str | None
    #: When the provider accepted it.
    sent_at: datetime | None


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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" hook below issues BEGIN itself,
    # so write transactions can take the lock up front (BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # 2 MiB of page cache per connection (one per worker thread); a sync raises its
    # own connection's to 64 MiB while it updates million-row indexes (lock_sync).
    cursor.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def default_database_url(config_dir: Path) -> str:
    """``sqlite:///<config_dir>/reminders.db``."""
    return f"sqlite:///{(config_dir / 'reminders.db').resolve()}"


class Store:
    """The outbox and everything stored beside it."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        #: SQLAlchemy URL (secrets in it are never printed; see :meth:`safe_url`).
        self.url = url
        try:
            self.engine: Engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot use database {self.safe_url}: {exc}") from None
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        if migrate:
            from reminders import migrate as migrations  # noqa: PLC0415  # they import this module

            try:
                migrations.upgrade(self.engine)
            except sa.exc.OperationalError as exc:
                raise StoreError(f"cannot open database {self.safe_url}: {exc.orig}") from None

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            yield Transaction(conn)

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A read-only transaction."""
        with self.engine.connect() as conn, conn.begin():
            yield Transaction(conn)

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log back into the database file (no-op elsewhere)."""
        if self.dialect == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"database {self.safe_url} is unreachable: {exc}") from None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Transaction:
    """Queries inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- sync ---------------------------------------------------------------------------

    def lock_sync(self) -> None:
        """Serialise syncs across instances (PostgreSQL advisory lock; SQLite's write lock does it).

        On SQLite it also gives this connection a large page cache for the bulk work;
        :meth:`end_sync` gives the memory back.
        """
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK})
        else:
            self.conn.exec_driver_sql(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")

    def analyze(self) -> None:
        """Refresh the planner's statistics after a bulk load (PostgreSQL; autovacuum may lag or be off)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.text("ANALYZE reminders"))
            self.conn.execute(sa.text("ANALYZE enrollments"))

    def end_sync(self) -> None:
        """Return the bulk page cache (SQLite) so an idle service stays small."""
        if self.conn.dialect.name == "sqlite":
            self.conn.exec_driver_sql(f"PRAGMA cache_size=-{_CACHE_KIB}")
            self.conn.exec_driver_sql("PRAGMA shrink_memory")

    def enrollment_index(self) -> dict[str, StoredEnrollment]:
        """Every stored enrollment's id, source digest and status."""
        rows = self.conn.execute(
            sa.select(ENROLLMENTS.c.patient_id, ENROLLMENTS.c.source_hash, ENROLLMENTS.c.status)
        )
        return {r.patient_id: StoredEnrollment(r.patient_id, r.source_hash, r.status) for r in rows}

    def reminders_of(self, patient_ids: Sequence[str]) -> list[StoredReminder]:
        """Every reminder of the given patients."""
        c = REMINDERS.c
        result: list[StoredReminder] = []
        for chunk in _chunks(patient_ids, IN_CHUNK):
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
                ).where(c.patient_id.in_(chunk))
            )
            result.extend(
                StoredReminder(
                    r.id,
                    (r.patient_id, r.protocol, r.milestone, r.occurrence, r.channel),
                    r.status,
                    r.due_at,
                    r.expires_at,
                    r.template,
                )
                for r in rows
            )
        return result

    def upsert_enrollments(
        self, new: Sequence[Mapping[str, Any]], changed: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert new enrollments and overwrite changed ones (rows keyed by ``patient_id``)."""
        for chunk in _chunks(new, CHUNK):
            self.conn.execute(ENROLLMENTS.insert(), list(chunk))
        if changed:
            columns = [k for k in changed[0] if k not in ("patient_id", "created_at")]
            stmt = (
                ENROLLMENTS.update()
                .where(ENROLLMENTS.c.patient_id == sa.bindparam("b_patient_id"))
                .values({k: sa.bindparam(f"b_{k}") for k in columns})
            )
            for chunk in _chunks(changed, CHUNK):
                self.conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in chunk])

    def set_enrollment_status(self, patient_ids: Sequence[str], status: str, now: datetime) -> None:
        """Set the status of several enrollments."""
        for chunk in _chunks(patient_ids, IN_CHUNK):
            self.conn.execute(
                ENROLLMENTS.update()
                .where(ENROLLMENTS.c.patient_id.in_(chunk))
                .values(status=status, updated_at=now, source_hash="")
            )

    def insert_plans(
        self,
        plans: Sequence[tuple[str, Sequence[PlanSlot]]],
        now: datetime,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Insert every slot of every ``(patient_id, slots)`` plan; returns the rows written.

        This is the hot path of a large sync (millions of rows): plans shared by many
        patients are encoded for the database once, and rows go to the driver's
        ``executemany`` as plain tuples, past SQLAlchemy's per-value type processing.
        """
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO reminders ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608  # constant columns
            f"VALUES ({', '.join([mark] * len(_INSERT_COLUMNS))})"
        )
        sqlite = self.conn.dialect.name == "sqlite"

        def db(value: datetime) -> Any:
            return value.astimezone(UTC).strftime(_SQLITE_DATETIME) if sqlite else value

        stamp = db(now)
        encoded: dict[int, list[tuple[Any, ...]]] = {}
        batch: list[tuple[Any, ...]] = []
        written = 0
        for pid, slots in plans:
            rows = encoded.get(id(slots))
            if rows is None:
                rows = encoded[id(slots)] = [
                    (p, m, o, c, t, db(d), db(d), db(x), s, 0, stamp)
                    for p, m, o, c, t, d, x, s in slots
                ]
            batch.extend((pid, *row) for row in rows)
            if len(batch) >= CHUNK:
                self.conn.exec_driver_sql(sql, batch)
                written += len(batch)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            self.conn.exec_driver_sql(sql, batch)
            written += len(batch)
            if progress:
                progress(len(batch))
        return written

    def replan_reminders(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite the schedule of unsent reminders (rows carry ``id`` and the new values)."""
        if not rows:
            return
        stmt = (
            REMINDERS.update()
            .where(REMINDERS.c.id == sa.bindparam("b_id"))
            # Only unsent rows; an explicit OR because executemany cannot expand IN lists.
            .where(sa.or_(*(REMINDERS.c.status == status for status in REPLANNABLE_STATUSES)))
            .values(
                template=sa.bindparam("b_template"),
                due_at=sa.bindparam("b_due_at"),
                not_before=sa.bindparam("b_due_at"),
                expires_at=sa.bindparam("b_expires_at"),
                status=sa.bindparam("b_status"),
                updated_at=sa.bindparam("b_updated_at"),
                error=None,
                error_code=None,
            )
        )
        for chunk in _chunks(rows, CHUNK):
            self.conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in chunk])

    def cancel_reminders(self, reminder_ids: Sequence[int], now: datetime, reason: str) -> int:
        """Cancel the given reminders if they are still pending; returns how many."""
        count = 0
        for chunk in _chunks(reminder_ids, IN_CHUNK):
            count += self.conn.execute(
                REMINDERS.update()
                .where(REMINDERS.c.id.in_(chunk), REMINDERS.c.status.in_(PENDING))
                .values(status="cancelled", error=reason, updated_at=now)
            ).rowcount
        return count

    def cancel_pending_of(self, patient_ids: Sequence[str], now: datetime, reason: str) -> int:
        """Cancel every pending reminder of the given patients; returns how many."""
        count = 0
        for chunk in _chunks(patient_ids, IN_CHUNK):
            count += self.conn.execute(
                REMINDERS.update()
                .where(REMINDERS.c.patient_id.in_(chunk), REMINDERS.c.status.in_(PENDING))
                .values(status="cancelled", error=reason, updated_at=now)
            ).rowcount
        return count

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
        for chunk in _chunks(rows, CHUNK):
            self.conn.execute(AUDIT.insert(), list(chunk))

    # -- dispatch -------------------------------------------------------------------------

    def expire_overdue(self, now: datetime) -> list[int]:
        """Mark pending reminders past their expiry ``expired``; returns their ids."""
        c = REMINDERS.c
        # A reminder with an in-doubt attempt may already have been delivered: it is
        # reconciled (claim_due offers it past expiry), never just marked expired.
        ids = [
            r.id
            for r in self.conn.execute(
                # status = 'planned' (not IN): only the equality matches the partial due index.
                sa.select(c.id).where(
                    c.status == "planned",
                    c.not_before <= now,
                    c.expires_at <= now,
                    c.id.not_in(_in_doubt()),
                )
            )
        ]
        for chunk in _chunks(ids, IN_CHUNK):
            self.conn.execute(
                REMINDERS.update()
                .where(c.id.in_(chunk), c.status.in_(PENDING))
                .values(status="expired", updated_at=now)
            )
        return ids

    def claim_due(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[Claimed]:
        """Lease up to ``limit`` due reminders of active patients to ``owner``.

        Rows are locked with ``FOR UPDATE SKIP LOCKED`` where the database has it
        (PostgreSQL) so concurrent dispatchers never claim the same row; on SQLite the
        write transaction's lock does the same job.
        """
        r, e = REMINDERS.c, ENROLLMENTS.c
        due = (
            sa.select(r.id)
            .join(ENROLLMENTS, e.patient_id == r.patient_id)
            .where(r.status == "planned", r.not_before <= now, _active(self.conn))
            .order_by(r.not_before, r.id)
            .limit(limit)
            .with_for_update(of=REMINDERS, skip_locked=True)
        )
        ids = [row.id for row in self.conn.execute(due.where(r.expires_at > now))]
        if len(ids) < limit:
            # Past expiry but in doubt: offered once more, to be reconciled and never resent.
            doubtful = due.where(r.expires_at <= now, r.id.in_(_in_doubt())).limit(limit - len(ids))
            ids += [row.id for row in self.conn.execute(doubtful)]
        if not ids:
            return []
        self.conn.execute(
            REMINDERS.update()
            .where(r.id.in_(ids))
            .values(status="sending", lease_owner=owner, lease_until=lease_until, updated_at=now)
        )
        doubt: dict[int, tuple[datetime, set[str]]] = {}
        for attempt in self.conn.execute(
            sa.select(ATTEMPTS.c.reminder_id, ATTEMPTS.c.started_at, ATTEMPTS.c.body_digest).where(
                ATTEMPTS.c.reminder_id.in_(ids), ATTEMPTS.c.outcome == "in_doubt"
            )
        ):
            since, digests = doubt.get(attempt.reminder_id, (attempt.started_at, set()))
            if attempt.body_digest:
                digests.add(attempt.body_digest)
            doubt[attempt.reminder_id] = (min(since, attempt.started_at), digests)
        rows = self.conn.execute(
            sa.select(
                r.id,
                r.patient_id,
                r.protocol,
                r.milestone,
                r.occurrence,
                r.channel,
                r.template,
                r.due_at,
                r.expires_at,
                r.attempts,
                e.first_name,
                e.last_name,
                e.phone,
                e.email,
                e.surgery_date,
                e.timezone,
                e.language,
            )
            .join(ENROLLMENTS, e.patient_id == r.patient_id)
            .where(r.id.in_(ids))
            .order_by(r.not_before, r.id)
        )
        return [
            Claimed(
                id=row.id,
                patient_id=row.patient_id,
                protocol=row.protocol,
                milestone=row.milestone,
                occurrence=row.occurrence,
                channel=row.channel,
                template=row.template,
                due_at=row.due_at,
                expires_at=row.expires_at,
                attempts=row.attempts,
                first_name=row.first_name,
                last_name=row.last_name,
                address=row.phone if row.channel == "sms" else row.email,
                surgery_date=row.surgery_date,
                timezone=row.timezone,
                language=row.language,
                in_doubt_since=_aware(doubt[row.id][0]) if row.id in doubt else None,
                in_doubt_digests=frozenset(doubt[row.id][1]) if row.id in doubt else frozenset(),
            )
            for row in rows
        ]

    def opted_out(self, channel: str, addresses: Iterable[str]) -> set[str]:
        """Which of ``addresses`` are opted out of ``channel``."""
        wanted = sorted(set(addresses))
        result: set[str] = set()
        for chunk in _chunks(wanted, IN_CHUNK):
            rows = self.conn.execute(
                sa.select(OPT_OUTS.c.address).where(
                    OPT_OUTS.c.channel == channel,
                    OPT_OUTS.c.address.in_(chunk),
                    OPT_OUTS.c.opted_out,
                )
            )
            result.update(r.address for r in rows)
        return result

    def opt_out(
        self, channel: str, address: str, now: datetime, *, source: str, opted_out: bool = True
    ) -> int:
        """Record that ``address`` opted out of (or back into) ``channel``.

        Opting out suppresses that address's pending reminders on the channel;
        opting back in returns its suppressed, unexpired reminders to ``planned``.
        Returns how many reminders changed.
        """
        o = OPT_OUTS.c
        changed = self.conn.execute(
            OPT_OUTS.update()
            .where(o.channel == channel, o.address == address)
            .values(opted_out=opted_out, source=source, changed_at=now)
        ).rowcount
        if not changed:
            self.conn.execute(
                OPT_OUTS.insert().values(
                    channel=channel,
                    address=address,
                    opted_out=opted_out,
                    source=source,
                    changed_at=now,
                )
            )
        e, r = ENROLLMENTS.c, REMINDERS.c
        column = e.phone if channel == "sms" else e.email
        patients = sa.select(e.patient_id).where(column == address)
        if opted_out:
            stmt = (
                REMINDERS.update()
                .where(r.status == "planned")
                .values(status="suppressed", updated_at=now)
            )
        else:
            # Future reminders resume; those that fell due while opted out stay suppressed.
            stmt = (
                REMINDERS.update()
                .where(r.status == "suppressed", r.due_at > now)
                .values(status="planned", updated_at=now)
            )
        return self.conn.execute(
            stmt.where(r.channel == channel, r.patient_id.in_(patients))
        ).rowcount

    def release(self, reminder_id: int, *, not_before: datetime, now: datetime) -> None:
        """Give a leased reminder back, to be tried again at ``not_before``."""
        self.conn.execute(
            REMINDERS.update()
            .where(REMINDERS.c.id == reminder_id, REMINDERS.c.status == "sending")
            .values(
                status="planned",
                not_before=not_before,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )

    def release_owner(self, owner: str, now: datetime) -> int:
        """Give back every lease of ``owner`` that has no attempt in flight; returns how many."""
        c = REMINDERS.c
        in_flight = sa.select(ATTEMPTS.c.reminder_id).where(ATTEMPTS.c.outcome == "pending")
        return self.conn.execute(
            REMINDERS.update()
            .where(c.lease_owner == owner, c.status == "sending", c.id.not_in(in_flight))
            .values(status="planned", lease_owner=None, lease_until=None, updated_at=now)
        ).rowcount

    def recover_expired_leases(self, now: datetime) -> int:
        """Return lapsed leases to ``planned``; returns how many.

        An attempt still ``pending`` under a lapsed lease means its process died
        mid-call: the provider may have the message. That attempt is marked
        ``in_doubt`` so the next claim reconciles it with the provider before any resend.
        """
        c, a = REMINDERS.c, ATTEMPTS.c
        lapsed = [
            row.id
            for row in self.conn.execute(
                sa.select(c.id)
                .where(c.status == "sending", c.lease_until < now)
                .with_for_update(skip_locked=True)
            )
        ]
        for chunk in _chunks(lapsed, IN_CHUNK):
            self.conn.execute(
                ATTEMPTS.update()
                .where(a.reminder_id.in_(chunk), a.outcome == "pending")
                .values(
                    outcome="in_doubt",
                    finished_at=now,
                    error="lease lapsed with the attempt in flight",
                )
            )
            self.conn.execute(
                REMINDERS.update()
                .where(c.id.in_(chunk), c.status == "sending")
                .values(
                    status="planned",
                    lease_owner=None,
                    lease_until=None,
                    not_before=now,
                    updated_at=now,
                )
            )
        return len(lapsed)

    def resolve_in_doubt(
        self, reminder_id: int, resolution: str, now: datetime, *, provider_id: str | None = None
    ) -> None:
        """Close the in-doubt attempts of a reminder: ``sent`` (found), ``absent`` or ``resent``."""
        a = ATTEMPTS.c
        values: dict[str, Any] = {"outcome": f"in_doubt:{resolution}", "finished_at": now}
        if provider_id is not None:
            values["provider_id"] = provider_id
        self.conn.execute(
            ATTEMPTS.update()
            .where(a.reminder_id == reminder_id, a.outcome == "in_doubt")
            .values(**values)
        )

    def mark_sent(self, reminder_id: int, provider_id: str, now: datetime) -> None:
        """Record a reminder as sent without a new attempt (found by reconciliation)."""
        self.conn.execute(
            REMINDERS.update()
            .where(REMINDERS.c.id == reminder_id)
            .values(
                status="sent",
                provider_id=provider_id,
                sent_at=now,
                error=None,
                error_code=None,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )

    def begin_attempt(
        self,
        reminder_id: int,
        number: int,
        owner: str,
        now: datetime,
        *,
        body_digest: str | None = None,
    ) -> int:
        """Record an attempt before the provider is called; returns its id."""
        self.conn.execute(
            REMINDERS.update()
            .where(REMINDERS.c.id == reminder_id)
            .values(attempts=number, updated_at=now)
        )
        result = self.conn.execute(
            ATTEMPTS.insert().values(
                reminder_id=reminder_id,
                number=number,
                owner=owner,
                started_at=now,
                outcome="pending",
                body_digest=body_digest,
            )
        )
        key = result.inserted_primary_key
        assert key is not None  # noqa: S101  # an INSERT always yields a key here
        return int(key[0])

    def finish_attempt(
        self,
        attempt_id: int,
        reminder_id: int,
        *,
        outcome: str,
        status: str,
        now: datetime,
        provider_id: str | None = None,
        error_code: str | None = None,
        error: str | None = None,
        not_before: datetime | None = None,
    ) -> None:
        """Record an attempt's outcome and move the reminder to ``status``."""
        self.conn.execute(
            ATTEMPTS.update()
            .where(ATTEMPTS.c.id == attempt_id)
            .values(
                finished_at=now,
                outcome=outcome,
                provider_id=provider_id,
                error_code=error_code,
                error=error,
            )
        )
        values: dict[str, Any] = {
            "status": status,
            "updated_at": now,
            "error_code": error_code,
            "error": error,
            "lease_owner": None,
            "lease_until": None,
        }
        if provider_id is not None:
            values["provider_id"] = provider_id
        if status in ("sent", "delivered"):
            values["sent_at"] = now
        if not_before is not None:
            values["not_before"] = not_before
        self.conn.execute(REMINDERS.update().where(REMINDERS.c.id == reminder_id).values(**values))

    def set_status(
        self, reminder_id: int, status: str, now: datetime, *, error: str | None = None
    ) -> None:
        """Move a leased reminder to a final status without an attempt (suppressed, expired)."""
        self.conn.execute(
            REMINDERS.update()
            .where(REMINDERS.c.id == reminder_id)
            .values(status=status, error=error, lease_owner=None, lease_until=None, updated_at=now)
        )

    def complete_finished(self, now: datetime) -> list[str]:
        """Mark active enrollments with nothing left to send ``completed``; returns their ids."""
        e, r = ENROLLMENTS.c, REMINDERS.c
        waiting = sa.select(r.patient_id).where(r.status.in_(("planned", "sending")))
        ids = [
            row.patient_id
            for row in self.conn.execute(
                sa.select(e.patient_id).where(_active(self.conn), e.patient_id.not_in(waiting))
            )
        ]
        for chunk in _chunks(ids, IN_CHUNK):
            self.conn.execute(
                ENROLLMENTS.update()
                .where(e.patient_id.in_(chunk))
                .values(status="completed", updated_at=now)
            )
        return ids

    # -- webhooks -------------------------------------------------------------------------

    def apply_status_callback(
        self,
        reminder_id: int,
        message_sid: str,
        message_status: str,
        error_code: str | None,
        now: datetime,
    ) -> str | None:
        """Apply a Twilio status callback; returns the new reminder status, or None if ignored.

        Duplicates and callbacks that arrive out of order never move a reminder
        backwards (``delivered`` is not undone by a late ``sent``); a callback for
        another message than the one recorded is ignored.
        """
        mapped = CALLBACK_STATUS.get(message_status.lower())
        if mapped is None:
            return None
        status, rank = mapped
        r = REMINDERS.c
        row = self.conn.execute(
            sa.select(r.status, r.provider_id, r.channel)
            .where(r.id == reminder_id)
            .with_for_update()
        ).first()
        if row is None or row.channel != "sms":
            return None
        if row.provider_id not in (None, message_sid):
            return None
        if row.status not in _RANK or rank <= _RANK[row.status]:
            return None
        values: dict[str, Any] = {"status": status, "provider_id": message_sid, "updated_at": now}
        if status == "failed":
            values.update(error_code=error_code, error=f"Twilio reported {message_status}")
        if row.status in ("planned", "sending"):
            values.update(sent_at=now, lease_owner=None, lease_until=None)
            self.conn.execute(
                ATTEMPTS.update()
                .where(
                    ATTEMPTS.c.reminder_id == reminder_id,
                    ATTEMPTS.c.outcome.in_(("pending", "in_doubt")),
                )
                .values(outcome="in_doubt:sent", provider_id=message_sid, finished_at=now)
            )
        self.conn.execute(REMINDERS.update().where(r.id == reminder_id).values(**values))
        return status

    def patient_of(self, reminder_id: int) -> str | None:
        """The patient id of a reminder, or None if there is no such reminder."""
        return self.conn.execute(
            sa.select(REMINDERS.c.patient_id).where(REMINDERS.c.id == reminder_id)
        ).scalar_one_or_none()

    def reminder_address(self, reminder_id: int) -> tuple[str, str] | None:
        """The channel and current address of a reminder's patient, if both exist."""
        r, e = REMINDERS.c, ENROLLMENTS.c
        row = self.conn.execute(
            sa.select(r.channel, e.phone, e.email)
            .join(ENROLLMENTS, e.patient_id == r.patient_id)
            .where(r.id == reminder_id)
        ).first()
        if row is None:
            return None
        address = row.phone if row.channel == "sms" else row.email
        return (row.channel, address) if address else None

    def patients_with(self, channel: str, address: str) -> list[str]:
        """Ids of enrollments reached at ``address`` on ``channel``."""
        column = ENROLLMENTS.c.phone if channel == "sms" else ENROLLMENTS.c.email
        rows = self.conn.execute(
            sa.select(ENROLLMENTS.c.patient_id)
            .where(column == address)
            .order_by(ENROLLMENTS.c.patient_id)
        )
        return [row.patient_id for row in rows]

    def record_inbound(
        self, sender: str, body: str, kind: str, now: datetime, *, provider_id: str | None
    ) -> tuple[int, list[str]] | None:
        """Store an inbound text; returns (id, patient ids), or None for a duplicate delivery."""
        if provider_id is not None:
            seen = self.conn.execute(
                sa.select(INBOUND.c.id).where(INBOUND.c.provider_id == provider_id)
            ).first()
            if seen is not None:
                return None
        patients = self.patients_with("sms", sender)
        result = self.conn.execute(
            INBOUND.insert().values(
                at=now,
                sender=sender,
                body=body,
                kind=kind,
                provider_id=provider_id,
                patient_ids=",".join(patients),
            )
        )
        key = result.inserted_primary_key
        assert key is not None  # noqa: S101  # an INSERT always yields a key here
        return int(key[0]), patients

    def mark_forwarded(self, inbound_id: int) -> None:
        """Note that an inbound text reached the coordinator."""
        self.conn.execute(INBOUND.update().where(INBOUND.c.id == inbound_id).values(forwarded=True))

    def gauges(self, now: datetime) -> tuple[dict[str, int], int, float]:
        """Reminders by status, the due backlog, and the age in seconds of its oldest item."""
        r, e = REMINDERS.c, ENROLLMENTS.c
        by_status = {
            str(k): int(v)
            for k, v in self.conn.execute(
                sa.select(r.status, sa.func.count()).group_by(r.status)
            ).all()
        }
        backlog, oldest = self.conn.execute(
            sa.select(sa.func.count(), sa.func.min(r.not_before))
            .select_from(REMINDERS.join(ENROLLMENTS, e.patient_id == r.patient_id))
            .where(r.status == "planned", r.not_before <= now, _active(self.conn))
        ).one()
        oldest_at = _aware(oldest)
        lag = max((now - oldest_at).total_seconds(), 0.0) if oldest_at else 0.0
        return by_status, int(backlog), lag

    # -- reading ----------------------------------------------------------------------------

    def enrollment(self, patient_id: str) -> Enrollment:
        """One enrollment; raises UnknownPatient."""
        row = self.conn.execute(
            sa.select(ENROLLMENTS).where(ENROLLMENTS.c.patient_id == patient_id)
        ).first()
        if row is None:
            raise UnknownPatient(f"no enrolled patient with id {patient_id!r}")
        return Enrollment.model_validate(dict(row._mapping))

    def enrollments(self) -> list[Enrollment]:
        """Every enrollment, ordered by patient id."""
        rows = self.conn.execute(sa.select(ENROLLMENTS).order_by(ENROLLMENTS.c.patient_id))
        return [Enrollment.model_validate(dict(r._mapping)) for r in rows]

    def timeline(self, patient_id: str | None = None) -> list[TimelineEntry]:
        """Reminders of one patient (or all), in due order."""
        c = REMINDERS.c
        query = sa.select(REMINDERS).order_by(
            c.due_at, c.patient_id, c.milestone, c.occurrence, c.channel
        )
        if patient_id is not None:
            query = query.where(c.patient_id == patient_id)
        return [_entry(r) for r in self.conn.execute(query)]

    def upcoming(self, limit: int) -> list[TimelineEntry]:
        """The next ``limit`` planned reminders of active patients, soonest first."""
        r, e = REMINDERS.c, ENROLLMENTS.c
        rows = self.conn.execute(
            sa.select(REMINDERS)
            .join(ENROLLMENTS, e.patient_id == r.patient_id)
            .where(r.status == "planned", _active(self.conn))
            .order_by(r.not_before, r.id)
            .limit(limit)
        )
        return [_entry(row) for row in rows]

    def next_due(self) -> datetime | None:
        """The earliest ``not_before`` of a planned reminder of an active patient."""
        r, e = REMINDERS.c, ENROLLMENTS.c
        # ORDER BY ... LIMIT 1 walks the partial due index and stops at the first
        # active patient; min() over the join would read every planned row.
        return self.conn.execute(
            sa.select(r.not_before)
            .join(ENROLLMENTS, e.patient_id == r.patient_id)
            .where(r.status == "planned", _active(self.conn))
            .order_by(r.not_before)
            .limit(1)
        ).scalar()

    def summary(self, failures: int = 10) -> StatusSummary:
        """Counts by status, next due and recent failures."""
        patients: dict[str, int] = dict(
            self.conn.execute(
                sa.select(ENROLLMENTS.c.status, sa.func.count()).group_by(ENROLLMENTS.c.status)
            ).all()
        )
        reminders: dict[str, int] = dict(
            self.conn.execute(
                sa.select(REMINDERS.c.status, sa.func.count()).group_by(REMINDERS.c.status)
            ).all()
        )
        failed = [
            _entry(r)
            for r in self.conn.execute(
                sa.select(REMINDERS)
                .where(REMINDERS.c.status == "failed")
                .order_by(REMINDERS.c.updated_at.desc())
                .limit(failures)
            )
        ]
        opted: dict[str, int] = dict(
            self.conn.execute(
                sa.select(OPT_OUTS.c.channel, sa.func.count())
                .where(OPT_OUTS.c.opted_out)
                .group_by(OPT_OUTS.c.channel)
            ).all()
        )
        return StatusSummary(
            patients={str(k): int(v) for k, v in patients.items()},
            reminders={str(k): int(v) for k, v in reminders.items()},
            next_due=self.next_due(),
            failures=failed,
            opted_out={str(k): int(v) for k, v in opted.items()},
        )

    def audit_events(self, patient_id: str | None = None) -> list[dict[str, Any]]:
        """Audit events, oldest first (optionally of one patient)."""
        query = sa.select(AUDIT).order_by(AUDIT.c.id)
        if patient_id is not None:
            query = query.where(AUDIT.c.patient_id == patient_id)
        return [
            {**dict(r._mapping), "detail": json.loads(r.detail)} for r in self.conn.execute(query)
        ]


def _active(conn: Connection) -> sa.ColumnElement[bool]:
    """``enrollments.status = 'active'`` for a query driven by the reminders' due index.

    Without statistics SQLite would start from the index on enrollments.status and
    sort every due row of every active patient; the unary ``+`` hides that index so
    the planner walks ``ix_reminders_due`` in order and stops at the LIMIT.
    """
    if conn.dialect.name == "sqlite":
        return sa.literal_column("+enrollments.status") == "active"
    return ENROLLMENTS.c.status == "active"


def _in_doubt() -> sa.Select[tuple[int]]:
    """Ids of reminders with an attempt that may have reached the provider."""
    return sa.select(ATTEMPTS.c.reminder_id).where(ATTEMPTS.c.outcome == "in_doubt")


def _aware(value: datetime | None) -> datetime | None:
    """Aggregates (``min``) bypass the column type on SQLite: make them aware UTC here."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _entry(row: Any) -> TimelineEntry:
    return TimelineEntry(
        id=row.id,
        patient_id=row.patient_id,
        protocol=row.protocol,
        milestone=row.milestone,
        occurrence=row.occurrence,
        channel=row.channel,
        template=row.template,
        due_at=row.due_at,
        not_before=row.not_before,
        expires_at=row.expires_at,
        status=row.status,
        attempts=row.attempts,
        provider_id=row.provider_id,
        error_code=row.error_code,
        error=row.error,
        sent_at=row.sent_at,
    )
