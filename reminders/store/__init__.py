"""The store: every table, every query and every transaction of the project.

Nothing else in the package builds SQL. One module per concern, as River keeps one
query file per table and procrastinate keeps its connector apart from its job manager:

====================  ==========================================================
``schema``            the tables (SQLModel) and the aware-UTC datetime column type
``engine``            :class:`Store`: engine, dialect set-up, read/write transactions
``enrollments``       the sync's queries: enrollments, bulk plan, re-plan, cancel
``known``             what a sync knows of stored enrollments: a compact index
``late``              late enrollment's expired milestones, one record per shared plan
``bulk``              rows to the driver's executemany without per-value processing
``outbox``            claim with a lease, expire, give back, settle, status callbacks
``claims``            the claim's SQL per dialect, built once
``attempts``          delivery attempts and their in-doubt resolution
``contacts``          opt-outs and inbound texts
``checkins``          check-ins and alerts: exactly one alert per rule firing
``reports``           check-ins and alerts aggregated per patient and protocol
``views``             what people read: timeline, summary, gauges, audit trail
``users``             dashboard accounts, sessions, failed sign-ins
``dashboard``         what the dashboard reads: worklist, patients, one patient, overview
``dashboard_alerts``  what it reads of check-ins and alerts
``manager``           :class:`OutboxManager`: what the dispatcher needs, a transaction a call
``migrate``           Alembic migrations (``reminders/migrations``), applied at start under a lock
====================  ==========================================================

Bulk work (a sync of 100,000 patients, batch claims) goes through SQLAlchemy Core with
``executemany``; the read side goes through SQLModel.
"""

from reminders.store.checkins import Asked
from reminders.store.engine import Store, Transaction, default_database_url
from reminders.store.enrollments import ReminderKey, StoredReminder
from reminders.store.known import StoredEnrollment
from reminders.store.manager import OutboxManager, Settlement, audit_record
from reminders.store.outbox import Claimed, Outgoing
from reminders.store.schema import (
    Alert,
    Attempt,
    AuditEvent,
    CheckIn,
    Enrollment,
    InboundMessage,
    OptOut,
    Reminder,
    User,
    UTCDateTime,
)
from reminders.store.views import AttentionItem, AttentionPage, StatusSummary, TimelineEntry

__all__ = [
    "Alert",
    "Asked",
    "Attempt",
    "AttentionItem",
    "AttentionPage",
    "AuditEvent",
    "CheckIn",
    "Claimed",
    "Enrollment",
    "InboundMessage",
    "OptOut",
    "OutboxManager",
    "Outgoing",
    "Reminder",
    "ReminderKey",
    "Settlement",
    "StatusSummary",
    "Store",
    "StoredEnrollment",
    "StoredReminder",
    "TimelineEntry",
    "Transaction",
    "UTCDateTime",
    "User",
    "audit_record",
    "default_database_url",
]
