"""The first schema: enrollments, the reminders outbox, attempts, opt-outs, audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "enrollments",
        sa.Column("patient_id", sa.String(), primary_key=True),
        sa.Column("first_name", sa.String(), nullable=False),
        sa.Column("last_name", sa.String(), nullable=False),
        sa.Column("phone", sa.String()),
        sa.Column("email", sa.String()),
        sa.Column("surgery_date", sa.Date(), nullable=False),
        sa.Column("protocol", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("channels", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attributes", sa.String(), nullable=False),
        sa.Column("source_hash", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_enrollments_status", "enrollments", ["status"])
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.String(), nullable=False),
        sa.Column("protocol", sa.String(), nullable=False),
        sa.Column("milestone", sa.String(), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String()),
        sa.Column("lease_until", TS),
        sa.Column("provider_id", sa.String()),
        sa.Column("error_code", sa.String()),
        sa.Column("error", sa.String()),
        sa.Column("sent_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint(
            "patient_id", "protocol", "milestone", "occurrence", "channel", name="uq_reminder_key"
        ),
    )
    op.create_index("ix_reminders_claim", "reminders", ["status", "not_before"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reminder_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("provider_id", sa.String()),
        sa.Column("error_code", sa.String()),
        sa.Column("error", sa.String()),
    )
    op.create_index("ix_attempts_reminder_id", "attempts", ["reminder_id"])
    op.create_table(
        "opt_outs",
        sa.Column("channel", sa.String(), primary_key=True),
        sa.Column("address", sa.String(), primary_key=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("patient_id", sa.String()),
        sa.Column("reminder_id", sa.Integer()),
        sa.Column("detail", sa.String(), nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_patient_id", "audit_events", ["patient_id"])


def downgrade() -> None:
    for table in ("audit_events", "opt_outs", "attempts", "reminders", "enrollments"):
        op.drop_table(table)
