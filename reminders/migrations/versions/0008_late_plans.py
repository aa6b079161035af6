"""Late enrollment's expired milestones, stored once per shared plan.

A patient enrolled after some milestones' expiry had one ``expired`` reminder row per
such milestone and channel: at 100,000 patients mid-recovery, about 3.7 million of the 6
million rows a first sync wrote. ``late_plans`` holds each distinct set once and
``enrollments.late_plan_id`` says which a patient has. Rows written before this
migration stay as they are: the readers show both forms alike.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "late_plans",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("slots", sa.String(), nullable=False),
    )
    with op.batch_alter_table("enrollments") as enrollments:
        enrollments.add_column(sa.Column("late_plan_id", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as enrollments:
        enrollments.drop_column("late_plan_id")
    op.drop_table("late_plans")
