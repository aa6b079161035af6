"""Check-ins and alerts; responses and notices in the outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("reminders") as reminders:
        reminders.add_column(
            sa.Column("kind", sa.String(), nullable=False, server_default="reminder")
        )
        reminders.add_column(sa.Column("address", sa.String()))
        reminders.add_column(sa.Column("alert_id", sa.Integer()))
        reminders.add_column(sa.Column("inbound_id", sa.Integer()))
    op.create_table(
        "check_ins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.String(), nullable=False),
        sa.Column("protocol", sa.String(), nullable=False),
        sa.Column("milestone", sa.String(), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("reminder_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("measure", sa.String(), nullable=False),
        sa.Column("asked_at", TS, nullable=False),
        sa.Column("closes_at", TS, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("value", sa.Integer()),
        sa.Column("answered_at", TS),
        sa.Column("via", sa.String()),
        sa.Column("inbound_id", sa.Integer()),
        sa.Column("reprompted", sa.Boolean(), nullable=False),
        sa.UniqueConstraint(
            "patient_id", "protocol", "milestone", "occurrence", name="uq_check_in_key"
        ),
    )
    op.create_index("ix_check_ins_patient_id", "check_ins", ["patient_id"])
    op.create_index(
        "ix_check_ins_open", "check_ins", ["closes_at"], sqlite_where=OPEN, postgresql_where=OPEN
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("patient_id", sa.String(), nullable=False),
        sa.Column("check_in_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("words", sa.String(), nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("acknowledged_at", TS),
        sa.Column("acknowledged_by", sa.String()),
        sa.Column("resolved_at", TS),
        sa.Column("resolved_by", sa.String()),
        sa.Column("note", sa.String()),
        sa.Column("escalated_at", TS),
        sa.UniqueConstraint("check_in_id", "source", name="uq_alert_firing"),
    )
    op.create_index("ix_alerts_patient_id", "alerts", ["patient_id"])
    op.create_index(
        "ix_alerts_open", "alerts", ["raised_at"], sqlite_where=OPEN, postgresql_where=OPEN
    )


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("check_ins")
    with op.batch_alter_table("reminders") as reminders:
        reminders.drop_column("inbound_id")
        reminders.drop_column("alert_id")
        reminders.drop_column("address")
        reminders.drop_column("kind")
