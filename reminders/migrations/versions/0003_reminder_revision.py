"""Reminders count their revisions: the calendar's SEQUENCE.

A re-plan (a new surgery date) or a cancellation adds one to ``revision``, so that a
calendar event's SEQUENCE rises with every change a calendar client must pick up.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reminders") as reminders:
        reminders.add_column(
            sa.Column("revision", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("reminders") as reminders:
        reminders.drop_column("revision")
