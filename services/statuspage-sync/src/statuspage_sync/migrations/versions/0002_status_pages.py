"""Status pages, component groups, components, monitor verdicts, status history, incidents,
maintenances, notices and deadlines.

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


def upgrade() -> None:
    op.create_table(
        "monitor_observation",
        sa.Column("monitor_id", sa.Uuid(), nullable=False),
        sa.Column("monitor_name", sa.String(length=200), nullable=False),
        sa.Column("product_slug", sa.String(length=100), nullable=False),
        sa.Column("component", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("monitor_id", name=op.f("pk_monitor_observation")),
    )
    op.create_index(
        "ix_monitor_observation_product_slug", "monitor_observation", ["product_slug"], unique=False
    )
    op.create_table(
        "status_page",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=60), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column(
            "time_zone", sa.String(length=64), server_default=sa.text("'Etc/UTC'"), nullable=False
        ),
        sa.Column(
            "products",
            postgresql.ARRAY(sa.String(length=100)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "auto_open_incidents", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "auto_resolve_incidents", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_page")),
        sa.UniqueConstraint("slug", name=op.f("uq_status_page_slug")),
    )
    op.create_table(
        "component_group",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status_page_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["status_page_id"],
            ["status_page.id"],
            name=op.f("fk_component_group_status_page_id_status_page"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_group")),
        sa.UniqueConstraint(
            "status_page_id", "name", name=op.f("uq_component_group_status_page_id_name")
        ),
    )
    op.create_table(
        "deadline",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status_page_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("incident_id", sa.Uuid(), nullable=True),
        sa.Column("page_id", sa.Uuid(), nullable=True),
        sa.Column("product_slug", sa.String(length=100), nullable=False),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column("reporter_name", sa.String(length=200), nullable=True),
        sa.Column("reporter_email", sa.String(length=320), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.Uuid(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["status_page_id"],
            ["status_page.id"],
            name=op.f("fk_deadline_status_page_id_status_page"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline")),
        sa.UniqueConstraint("key", name=op.f("uq_deadline_key")),
    )
    op.create_index("ix_deadline_incident_id", "deadline", ["incident_id"], unique=False)
    op.create_index("ix_deadline_ticket_id", "deadline", ["ticket_id"], unique=False)
    op.create_table(
        "incident",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status_page_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind", sa.String(length=20), server_default=sa.text("'incident'"), nullable=False
        ),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("impact", sa.String(length=20), nullable=False),
        sa.Column("automatic", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("monitor_id", sa.Uuid(), nullable=True),
        sa.Column("product_slug", sa.String(length=100), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("monitoring_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["status_page_id"],
            ["status_page.id"],
            name=op.f("fk_incident_status_page_id_status_page"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
    )
    op.create_index(
        "ix_incident_status_page_id_created_at",
        "incident",
        ["status_page_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "component",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status_page_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "only_show_if_degraded", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("product_slug", sa.String(length=100), nullable=True),
        sa.Column(
            "monitor_ids",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "status", sa.String(length=30), server_default=sa.text("'operational'"), nullable=False
        ),
        sa.Column(
            "status_source",
            sa.String(length=20),
            server_default=sa.text("'monitor'"),
            nullable=False,
        ),
        sa.Column("manual_status", sa.String(length=30), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["component_group.id"],
            name=op.f("fk_component_group_id_component_group"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["status_page_id"],
            ["status_page.id"],
            name=op.f("fk_component_status_page_id_status_page"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component")),
        sa.UniqueConstraint(
            "status_page_id", "name", name=op.f("uq_component_status_page_id_name")
        ),
    )
    op.create_table(
        "notice",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("expected_resolution_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "affected_components",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("automatic", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_notice_incident_id_incident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice")),
    )
    op.create_index(
        "ix_notice_incident_id_created_at", "notice", ["incident_id", "created_at"], unique=False
    )
    op.create_table(
        "component_status_span",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("component_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["component.id"],
            name=op.f("fk_component_status_span_component_id_component"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_status_span")),
    )
    op.create_index(
        "ix_component_status_span_component_id_started_at",
        "component_status_span",
        ["component_id", "started_at"],
        unique=False,
    )
    op.create_table(
        "incident_component",
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("component_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["component.id"],
            name=op.f("fk_incident_component_component_id_component"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_incident_component_incident_id_incident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "component_id", name=op.f("pk_incident_component")),
    )


def downgrade() -> None:
    op.drop_table("incident_component")
    op.drop_index(
        "ix_component_status_span_component_id_started_at", table_name="component_status_span"
    )
    op.drop_table("component_status_span")
    op.drop_index("ix_notice_incident_id_created_at", table_name="notice")
    op.drop_table("notice")
    op.drop_table("component")
    op.drop_index("ix_incident_status_page_id_created_at", table_name="incident")
    op.drop_table("incident")
    op.drop_index("ix_deadline_ticket_id", table_name="deadline")
    op.drop_index("ix_deadline_incident_id", table_name="deadline")
    op.drop_table("deadline")
    op.drop_table("component_group")
    op.drop_table("status_page")
    op.drop_index("ix_monitor_observation_product_slug", table_name="monitor_observation")
    op.drop_table("monitor_observation")
