"""Products (seeded), tickets, timeline, attachments, idempotency keys, product health.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from intake.models import metadata

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PRODUCTS = [
    ("atomic-apps", "Atomic Apps"),
    ("canvas-hosting", "Canvas Hosting"),
    ("custom-development", "Custom Development"),
]


def upgrade() -> None:
    metadata.create_all(op.get_bind())
    for slug, name in PRODUCTS:
        op.execute(
            f"INSERT INTO product (slug, name) VALUES ('{slug}', '{name}') ON CONFLICT DO NOTHING"
        )


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
