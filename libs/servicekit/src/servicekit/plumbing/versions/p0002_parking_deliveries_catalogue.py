"""Outbox rows and timers can be parked; deliveries; the product catalogue's read model.

Revision ID: p0002
Revises:
Depends on: 0001 (every service's first revision, which creates the plumbing)
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "p0002"
down_revision = None
branch_labels = ("plumbing",)
depends_on = "0001"


def upgrade() -> None:
    op.add_column(
        "outbox_event",
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("outbox_event", sa.Column("last_error", sa.Text))
    op.add_column("outbox_event", sa.Column("parked_at", sa.DateTime(timezone=True)))
    op.add_column("timer", sa.Column("parked_at", sa.DateTime(timezone=True)))
    op.create_table(
        "delivery",
        sa.Column("id", sa.Uuid, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("dedupe_key", sa.String(300), nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("state", sa.String(20), nullable=False, server_default=sa.text("'queued'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "due_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("last_error", sa.Text),
        sa.Column("result", postgresql.JSONB),
        sa.Column("correlation_id", sa.Uuid),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_delivery"),
        sa.UniqueConstraint("dedupe_key", name="uq_delivery_dedupe_key"),
    )
    op.create_index(
        "ix_delivery_due_at",
        "delivery",
        ["due_at"],
        postgresql_where=sa.text("state IN ('queued', 'sending')"),
    )
    op.create_table(
        "catalogue_product",
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_catalogue_product"),
    )


def downgrade() -> None:
    op.drop_table("catalogue_product")
    op.drop_table("delivery")
    op.drop_column("timer", "parked_at")
    for column in ("parked_at", "last_error", "attempts"):
        op.drop_column("outbox_event", column)
