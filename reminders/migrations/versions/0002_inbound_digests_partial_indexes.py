"""Inbound texts, digests of sent texts, and partial indexes for the claim and lease queries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
PLANNED = sa.text("status = 'planned'")
SENDING = sa.text("status = 'sending'")


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("provider_id", sa.String(), unique=True),
        sa.Column("patient_ids", sa.String(), nullable=False),
        sa.Column("forwarded", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_inbound_messages_at", "inbound_messages", ["at"])
    with op.batch_alter_table("attempts") as attempts:
        attempts.add_column(sa.Column("body_digest", sa.String()))
    op.create_index("ix_attempts_outcome", "attempts", ["outcome"])
    # Only planned rows are ever claimed and only sending rows have leases: partial
    # indexes keep the claim fast and make bulk inserts of expired history cheap.
    op.drop_index("ix_reminders_claim", table_name="reminders")
    op.create_index(
        "ix_reminders_due",
        "reminders",
        ["not_before"],
        sqlite_where=PLANNED,
        postgresql_where=PLANNED,
    )
    op.create_index(
        "ix_reminders_leased",
        "reminders",
        ["lease_until"],
        sqlite_where=SENDING,
        postgresql_where=SENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_reminders_leased", table_name="reminders")
    op.drop_index("ix_reminders_due", table_name="reminders")
    op.create_index("ix_reminders_claim", "reminders", ["status", "not_before"])
    op.drop_index("ix_attempts_outcome", table_name="attempts")
    with op.batch_alter_table("attempts") as attempts:
        attempts.drop_column("body_digest")
    op.drop_table("inbound_messages")
