"""The tables (SQLModel declarations) and the column type that keeps datetimes aware.

Schema changes ship as Alembic migrations (``reminders/migrations``); a test compares
these declarations with what the migrations build, so the two never drift.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from reminders.lifecycle import (
    AlertStatus,
    AttemptOutcome,
    CheckInStatus,
    EnrollmentStatus,
    MessageKind,
    ReminderStatus,
)
from reminders.models import Recipient

#: The columns that make a reminder unique: (patient, protocol, milestone, occurrence, channel).
KEY_COLUMNS: Final = ("patient_id", "protocol", "milestone", "occurrence", "channel")
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


def _where_status(status: str) -> sa.TextClause:
    return sa.text(f"status = '{status}'")


#: Planned again after a failed try: waiting to retry.
_RETRYING: Final = sa.text(f"status = '{ReminderStatus.PLANNED}' AND attempts > 0")
#: Handed to the provider at some time.
_SENT: Final = sa.text("sent_at IS NOT NULL")


def reached(column: str = "status") -> str:
    """Accepted by the provider: ``status IN ('sent', 'delivered')`` as ``ix_reminders_reached``
    says it, for every query that means it (SQLite uses a partial index only for a query that
    repeats its WHERE term for term)."""
    return f"{column} IN ('{ReminderStatus.SENT}', '{ReminderStatus.DELIVERED}')"


_REACHED: Final = sa.text(reached())
#: Reminders that need a coordinator (:class:`~reminders.lifecycle.Attention`): failed, or
#: tried and still planned (retrying, in doubt) or expired. One text for the queries and
#: the partial index ``ix_reminders_attention``, so that SQLite matches them term for term.
NEEDS_ATTENTION: Final = sa.text(
    f"(status = '{ReminderStatus.FAILED}' OR (attempts > 0 AND status IN "
    f"('{ReminderStatus.PLANNED}', '{ReminderStatus.EXPIRED}')))"
)


class Enrollment(SQLModel, table=True):
    """One patient on one protocol."""

    __tablename__ = "enrollments"

    patient_id: str = Field(primary_key=True)
    first_name: str
    last_name: str = ""
    phone: str | None = Field(default=None, index=True)
    email: str | None = Field(default=None, index=True)
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
    #: The milestones already expired when the patient was enrolled (migration 0008).
    late_plan_id: int | None = None

    def recipient(self) -> Recipient:
        """Who this enrollment's messages are for, as the templates see them."""
        return Recipient(
            self.patient_id,
            self.first_name,
            self.last_name,
            self.language,
            self.timezone,
            self.surgery_date,
            self.phone,
        )


class Reminder(SQLModel, table=True):
    """One message to one patient for one milestone occurrence on one channel."""

    __tablename__ = "reminders"
    __table_args__ = (
        sa.UniqueConstraint(*KEY_COLUMNS, name="uq_reminder_key"),
        # Only planned rows are claimed, only sending rows hold leases (migration 0002).
        sa.Index(
            "ix_reminders_due",
            "not_before",
            sqlite_where=_where_status(ReminderStatus.PLANNED),
            postgresql_where=_where_status(ReminderStatus.PLANNED),
        ),
        sa.Index(
            "ix_reminders_leased",
            "lease_until",
            sqlite_where=_where_status(ReminderStatus.SENDING),
            postgresql_where=_where_status(ReminderStatus.SENDING),
        ),
        # The dashboard's worklist and overview (migration 0004): failures, retries and
        # sends are few next to the planned history, so partial indexes cost a sync nothing.
        sa.Index(
            "ix_reminders_failed",
            "updated_at",
            sqlite_where=_where_status(ReminderStatus.FAILED),
            postgresql_where=_where_status(ReminderStatus.FAILED),
        ),
        sa.Index(
            "ix_reminders_retrying",
            "not_before",
            sqlite_where=_RETRYING,
            postgresql_where=_RETRYING,
        ),
        sa.Index(
            "ix_reminders_sent_at",
            "sent_at",
            sqlite_where=_SENT,
            postgresql_where=_SENT,
        ),
        # The last message that reached a patient on a channel, read from the index alone
        # (migration 0005): a failure the worklist shows is one nothing reached them after.
        sa.Index(
            "ix_reminders_reached",
            "patient_id",
            "channel",
            "sent_at",
            sqlite_where=_REACHED,
            postgresql_where=_REACHED,
        ),
        # The few that need a coordinator, among millions (migration 0006).
        sa.Index(
            "ix_reminders_attention",
            "updated_at",
            sqlite_where=NEEDS_ATTENTION,
            postgresql_where=NEEDS_ATTENTION,
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
    #: Re-plans and cancellations so far: a calendar event's SEQUENCE (migration 0003).
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    #: A planned reminder, a response to a patient's text, or a notice to the care team.
    kind: str = Field(
        default=MessageKind.REMINDER, sa_column_kwargs={"server_default": MessageKind.REMINDER}
    )
    #: Where a notice goes (a care-team address); None: the patient's own address.
    address: str | None = None
    #: The alert a notice is about.
    alert_id: int | None = None
    #: The inbound text a response answers or a notice forwards.
    inbound_id: int | None = None


class LatePlan(SQLModel, table=True):
    """Milestones already past their expiry when patients were enrolled (late enrollment).

    One row for every patient of a sync whose plan is the same (protocol, surgery date,
    zone, channels, attributes), in place of one ``expired`` reminder per milestone per
    patient: two thirds of the rows a 100,000-patient first sync wrote. Never changed:
    a patient's record that changes later turns their share into reminder rows first
    (``reminders.store.late``), so a re-plan sees every reminder as before.
    """

    __tablename__ = "late_plans"

    id: int | None = Field(default=None, primary_key=True)
    #: When the sync marked them expired (the rows' ``updated_at``).
    marked_at: datetime = _utc()
    #: How many slots ``slots`` holds (the status counts add it per patient).
    size: int
    #: JSON list of [protocol, milestone, occurrence, channel, template, due_at, expires_at].
    slots: str


class CheckIn(SQLModel, table=True):
    """One check-in question asked of one patient, and its answer."""

    __tablename__ = "check_ins"
    __table_args__ = (
        sa.UniqueConstraint(
            "patient_id", "protocol", "milestone", "occurrence", name="uq_check_in_key"
        ),
        sa.Index(
            "ix_check_ins_open",
            "closes_at",
            sqlite_where=_where_status(CheckInStatus.OPEN),
            postgresql_where=_where_status(CheckInStatus.OPEN),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(index=True)
    protocol: str
    milestone: str
    occurrence: int
    #: The reminder whose acceptance opened it (the first channel to go out).
    reminder_id: int
    kind: str  # scale | yes-no | choice
    measure: str
    asked_at: datetime = _utc()
    closes_at: datetime = _utc()
    status: str  # see CheckInStatus
    #: The answer as read: a score, 1/0 for yes/no, an option number.
    value: int | None = None
    answered_at: datetime | None = _utc(default=None)
    via: str | None = None  # sms | web | cli
    inbound_id: int | None = None
    reprompted: bool = False


class Alert(SQLModel, table=True):
    """An answer or a silence that the care team must look at."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.UniqueConstraint("check_in_id", "source", name="uq_alert_firing"),
        sa.Index(
            "ix_alerts_open",
            "raised_at",
            sqlite_where=_where_status(AlertStatus.OPEN),
            postgresql_where=_where_status(AlertStatus.OPEN),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(index=True)
    check_in_id: int
    #: What fired: ``answer`` (a threshold or a rise) or ``missed``.
    source: str
    level: str  # see AlertLevel
    #: Machine-readable reasons, comma-separated (``threshold:urgent:>=8,rise:3``).
    reason: str
    #: The same in words (no patient text: safe to show and log).
    words: str
    raised_at: datetime = _utc()
    status: str  # see AlertStatus
    acknowledged_at: datetime | None = _utc(default=None)
    acknowledged_by: str | None = None
    resolved_at: datetime | None = _utc(default=None)
    resolved_by: str | None = None
    note: str | None = None
    escalated_at: datetime | None = _utc(default=None)


class Attempt(SQLModel, table=True):
    """One try at delivering a reminder, written before the provider is called."""

    __tablename__ = "attempts"

    id: int | None = Field(default=None, primary_key=True)
    reminder_id: int = Field(index=True)
    number: int
    owner: str
    started_at: datetime = _utc()
    finished_at: datetime | None = _utc(default=None)
    outcome: str = Field(default=AttemptOutcome.PENDING, index=True)  # see AttemptOutcome
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
    #: The latest event of a kind (the last sync, a user's sign-ins) without a scan.
    __table_args__ = (sa.Index("ix_audit_events_kind", "kind", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # reminder.sent, opt_out.sms.on, config.sync, ...
    at: datetime = _utc(index=True)
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


class User(SQLModel, table=True):
    """A person who may sign in to the dashboard."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    #: Sign-in name, lower case; also what alerts record as who acknowledged them.
    email: str = Field(unique=True)
    role: str  # see reminders.accounts.Role
    #: Argon2id hash (PHC string); None: signs in only through the auth proxy.
    password_hash: str | None = None
    created_at: datetime = _utc()
    disabled_at: datetime | None = _utc(default=None)
    last_sign_in_at: datetime | None = _utc(default=None)


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, the table only its digest."""

    __tablename__ = "web_sessions"

    #: SHA-256 of the token (a stolen database does not yield usable cookies).
    id: str = Field(primary_key=True)
    user_id: int = Field(index=True)
    created_at: datetime = _utc()
    #: Refreshed as the user works; idle past the timeout ends the session.
    last_seen_at: datetime = _utc(index=True)


class SignInFailure(SQLModel, table=True):
    """A failed sign-in, kept for an hour to limit guessing per account and per address."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        sa.Index("ix_sign_in_failures_account", "account", "at"),
        sa.Index("ix_sign_in_failures_address", "address", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(index=True)
    #: The account name as typed (lower case, at most 254 characters).
    account: str
    #: The client's address.
    address: str


_T = SQLModel.metadata.tables
ENROLLMENTS: Final = _T["enrollments"]
REMINDERS: Final = _T["reminders"]
ATTEMPTS: Final = _T["attempts"]
OPT_OUTS: Final = _T["opt_outs"]
AUDIT: Final = _T["audit_events"]
INBOUND: Final = _T["inbound_messages"]
USERS: Final = _T["users"]
SESSIONS: Final = _T["web_sessions"]
SIGN_IN_FAILURES: Final = _T["sign_in_failures"]
CHECK_INS: Final = _T["check_ins"]
ALERTS: Final = _T["alerts"]
LATE_PLANS: Final = _T["late_plans"]


def _slices(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batches(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``rows`` in slices of :data:`CHUNK`, one ``executemany`` each."""
    return _slices(rows, CHUNK)


def among(
    conn: sa.Connection, column: sa.ColumnElement[Any], keys: Sequence[Any]
) -> Iterator[sa.ColumnElement[bool]]:
    """``column`` is one of ``keys``, as conditions to run one statement each (none for no
    keys): one array on PostgreSQL (``= ANY``), whose text is the same for any number of
    keys, where an ``IN`` list of a thousand bound values cost 15 ms to expand and convert
    each time; ``IN`` lists of :data:`IN_CHUNK` on SQLite (its limit on bound values)."""
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        yield column == sa.any_(sa.literal(list(keys), postgresql.ARRAY(column.type)))
        return
    for chunk in _slices(keys, IN_CHUNK):
        yield column.in_(chunk)


def aware(value: datetime | str | None) -> datetime | None:
    """Aggregates (``min``) bypass the column type on SQLite: make them aware UTC here."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def active(conn: sa.Connection) -> sa.ColumnElement[bool]:
    """``enrollments.status = 'active'`` for a query driven by the reminders' due index.

    Without statistics SQLite would start from the index on enrollments.status and
    sort every due row of every active patient; the unary ``+`` hides that index so
    the planner walks ``ix_reminders_due`` in order and stops at the LIMIT.
    """
    if conn.dialect.name == "sqlite":
        return sa.literal_column("+enrollments.status") == EnrollmentStatus.ACTIVE.value
    return ENROLLMENTS.c.status == EnrollmentStatus.ACTIVE


def in_doubt_ids() -> sa.Select[tuple[int]]:
    """Ids of reminders with an attempt that may have reached the provider."""
    return sa.select(ATTEMPTS.c.reminder_id).where(ATTEMPTS.c.outcome == AttemptOutcome.IN_DOUBT)


def inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key of the row a single-row INSERT wrote."""
    key = result.inserted_primary_key
    assert key is not None  # noqa: S101  # an INSERT of one row always yields its key
    return int(key[0])


def upsert(conn: sa.Connection, table: sa.Table) -> Any:
    """An ``INSERT`` of the connection's dialect, with ``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
