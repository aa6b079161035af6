"""The dashboard: the last message that reached a patient per channel, from an index alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REACHED = sa.text("status IN ('sent', 'delivered')")


def upgrade() -> None:
    # Only accepted rows enter it: a sync's planned rows cost it nothing, a send one entry.
    op.create_index(
        "ix_reminders_reached",
        "reminders",
        ["patient_id", "channel", "sent_at"],
        sqlite_where=REACHED,
        postgresql_where=REACHED,
    )


def downgrade() -> None:
    op.drop_index("ix_reminders_reached", table_name="reminders")
