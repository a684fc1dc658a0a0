"""Products (seeded), tickets, timeline, attachments, idempotency keys, product health.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PRODUCTS = [
    ("atomic-apps", "Atomic Apps"),
    ("canvas-hosting", "Canvas Hosting"),
    ("custom-development", "Custom Development"),
]


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.execute("CREATE SEQUENCE ticket_number_seq START WITH 1000")
    product = op.create_table(
        "product",
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_product"),
    )
    op.bulk_insert(product, [{"slug": slug, "name": name} for slug, name in PRODUCTS])
    op.create_table(
        "ticket",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "number",
            sa.String(20),
            server_default=sa.text("'KLX-' || nextval('ticket_number_seq')"),
            nullable=False,
        ),
        sa.Column("organization", sa.String(200), nullable=False),
        sa.Column("reporter_name", sa.String(200), nullable=False),
        sa.Column("reporter_email", sa.String(320), nullable=False),
        sa.Column("product_slug", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "urls", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("error_text", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(30), server_default="new", nullable=False),
        sa.Column("monitoring_state", sa.String(20), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_slug"], ["product.slug"], name="fk_ticket_product_slug_product"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ticket"),
        sa.UniqueConstraint("number", name="uq_ticket_number"),
    )
    op.create_index("ix_ticket_created_at_id", "ticket", ["created_at", "id"])
    op.create_index("ix_ticket_organization_severity", "ticket", ["organization", "severity"])
    op.create_table(
        "ticket_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("status", sa.String(30), nullable=True),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name="fk_ticket_event_ticket_id_ticket",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_event"),
    )
    op.create_index("ix_ticket_event_ticket_id", "ticket_event", ["ticket_id"])
    op.create_table(
        "attachment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
            name="fk_attachment_ticket_id_ticket",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_attachment"),
    )
    op.create_index("ix_attachment_ticket_id", "attachment", ["ticket_id"])
    op.create_table(
        "idempotency_key",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("api_key_id", "key", name="pk_idempotency_key"),
    )
    op.create_table(
        "product_signal",
        sa.Column("product_slug", sa.String(100), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("product_slug", "source", name="pk_product_signal"),
    )


def downgrade() -> None:
    for table in (
        "product_signal",
        "idempotency_key",
        "attachment",
        "ticket_event",
        "ticket",
        "product",
    ):
        op.drop_table(table)
    op.execute("DROP SEQUENCE ticket_number_seq")
