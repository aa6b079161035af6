"""The dashboard: users, sessions, sign-in failures, and the indexes its pages read through.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
FAILED = sa.text("status = 'failed'")
RETRYING = sa.text("status = 'planned' AND attempts > 0")
SENT = sa.text("sent_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(), nullable=False, unique=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("password_hash", sa.String()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled_at", TS),
        sa.Column("last_sign_in_at", TS),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_last_seen_at", "web_sessions", ["last_seen_at"])
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
    )
    op.create_index("ix_sign_in_failures_at", "sign_in_failures", ["at"])
    op.create_index("ix_sign_in_failures_account", "sign_in_failures", ["account", "at"])
    op.create_index("ix_sign_in_failures_address", "sign_in_failures", ["address", "at"])
    # What the dashboard's pages read: failures, retries and sends (few rows, partial
    # indexes), patients by contact (opt-outs), the latest audit event of a kind.
    op.create_index(
        "ix_reminders_failed",
        "reminders",
        ["updated_at"],
        sqlite_where=FAILED,
        postgresql_where=FAILED,
    )
    op.create_index(
        "ix_reminders_retrying",
        "reminders",
        ["not_before"],
        sqlite_where=RETRYING,
        postgresql_where=RETRYING,
    )
    op.create_index(
        "ix_reminders_sent_at", "reminders", ["sent_at"], sqlite_where=SENT, postgresql_where=SENT
    )
    op.create_index("ix_enrollments_phone", "enrollments", ["phone"])
    op.create_index("ix_enrollments_email", "enrollments", ["email"])
    op.create_index("ix_audit_events_kind", "audit_events", ["kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_kind", table_name="audit_events")
    op.drop_index("ix_enrollments_email", table_name="enrollments")
    op.drop_index("ix_enrollments_phone", table_name="enrollments")
    op.drop_index("ix_reminders_sent_at", table_name="reminders")
    op.drop_index("ix_reminders_retrying", table_name="reminders")
    op.drop_index("ix_reminders_failed", table_name="reminders")
    op.drop_table("sign_in_failures")
    op.drop_table("web_sessions")
    op.drop_table("users")
