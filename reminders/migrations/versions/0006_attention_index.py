"""A partial index on the reminders that need a coordinator (``reminders status``).

Failed reminders, and tried ones still planned (retrying, in doubt) or expired: a few rows
among millions, listed and counted by ``status`` and after every ``tick`` without reading
the whole table. The predicate is the text of ``reminders.store.schema.NEEDS_ATTENTION``,
copied here as migrations are frozen.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NEEDS_ATTENTION = sa.text(
    "(status = 'failed' OR (attempts > 0 AND status IN ('planned', 'expired')))"
)


def upgrade() -> None:
    op.create_index(
        "ix_reminders_attention",
        "reminders",
        ["updated_at"],
        sqlite_where=NEEDS_ATTENTION,
        postgresql_where=NEEDS_ATTENTION,
    )


def downgrade() -> None:
    op.drop_index("ix_reminders_attention", table_name="reminders")
