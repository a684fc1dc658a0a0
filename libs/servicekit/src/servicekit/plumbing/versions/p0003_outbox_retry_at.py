"""Outbox rows the broker refused wait for their retry; unparked outbox rows and timers have
indexes of their own (a timer worker claims the oldest due timers of each kind it handles
from ``ix_timer_claim``, whatever the table's statistics say).

Revision ID: p0003_outbox_retry_at
Revises: p0002
"""

import sqlalchemy as sa
from alembic import op

revision = "p0003_outbox_retry_at"
down_revision = "p0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox_event", sa.Column("retry_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_outbox_event_unparked_seq",
        "outbox_event",
        ["seq"],
        postgresql_where=sa.text("parked_at IS NULL"),
    )
    op.create_index(
        "ix_timer_claim",
        "timer",
        ["kind", "due_at"],
        postgresql_where=sa.text("parked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_timer_claim", table_name="timer")
    op.drop_index("ix_outbox_event_unparked_seq", table_name="outbox_event")
    op.drop_column("outbox_event", "retry_at")
