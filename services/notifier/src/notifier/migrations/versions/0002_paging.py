"""People, rules, schedules, overrides, policies, pages and their timeline, read models.

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


def _at(name: str, *, nullable: bool = False, default: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.text("now()") if default and not nullable else None,
    )


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(40)),
        sa.Column("slack", sa.String(200)),
        sa.Column("time_zone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("ical_token", sa.String(64), nullable=False),
        _at("created_at"),
        sa.UniqueConstraint("ical_token", name="uq_person_ical_token"),
    )
    op.create_table(
        "notification_rule",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "person_id",
            sa.Uuid(),
            sa.ForeignKey("person.id", ondelete="CASCADE", name="fk_notification_rule_person_id_person"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("delay_s", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.create_index("ix_notification_rule_person_id", "notification_rule", ["person_id"])
    op.create_table(
        "schedule",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("ical_token", sa.String(64), nullable=False),
        _at("created_at"),
        sa.UniqueConstraint("ical_token", name="uq_schedule_ical_token"),
    )
    op.create_table(
        "schedule_layer",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "schedule_id",
            sa.Uuid(),
            sa.ForeignKey("schedule.id", ondelete="CASCADE", name="fk_schedule_layer_schedule_id_schedule"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("rotation_start", sa.DateTime(), nullable=False),
        sa.Column("shift_unit", sa.String(10), nullable=False),
        sa.Column("shift_count", sa.Integer(), nullable=False),
        sa.Column("members", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column(
            "restrictions", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")
        ),
    )
    op.create_index("ix_schedule_layer_schedule_id", "schedule_layer", ["schedule_id"])
    op.create_table(
        "schedule_override",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "schedule_id",
            sa.Uuid(),
            sa.ForeignKey("schedule.id", ondelete="CASCADE", name="fk_schedule_override_schedule_id_schedule"),
            nullable=False,
        ),
        sa.Column(
            "person_id",
            sa.Uuid(),
            sa.ForeignKey("person.id", ondelete="CASCADE", name="fk_schedule_override_person_id_person"),
            nullable=False,
        ),
        _at("starts_at", default=False),
        _at("ends_at", default=False),
        _at("created_at"),
    )
    op.create_index(
        "ix_schedule_override_schedule_id_starts_at",
        "schedule_override",
        ["schedule_id", "starts_at"],
    )
    op.create_table(
        "escalation_policy",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("product_slug", sa.String(100)),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("repeat", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("levels", postgresql.JSONB(), nullable=False),
        _at("created_at"),
        sa.UniqueConstraint("product_slug", name="uq_escalation_policy_product_slug"),
    )
    op.create_index(
        "uq_escalation_policy_default",
        "escalation_policy",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "page",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("product_slug", sa.String(100), nullable=False),
        sa.Column("product_name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, server_default="triggered"),
        sa.Column("urgency", sa.String(10), nullable=False, server_default="high"),
        sa.Column("policy", postgresql.JSONB(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("round", sa.Integer(), nullable=False, server_default=sa.text("1")),
        _at("opened_at"),
        _at("notified_at", nullable=True),
        sa.Column("oncall_name", sa.String(200)),
        sa.Column("oncall_email", sa.String(320)),
        _at("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.Uuid()),
        sa.Column("acknowledged_by_name", sa.String(200)),
        _at("resolved_at", nullable=True),
    )
    op.create_index(
        "uq_page_dedup_key_open",
        "page",
        ["dedup_key"],
        unique=True,
        postgresql_where=sa.text("state <> 'resolved'"),
    )
    op.create_index("ix_page_opened_at", "page", ["opened_at"])
    op.create_table(
        "page_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), primary_key=True),
        sa.Column(
            "page_id",
            sa.Uuid(),
            sa.ForeignKey("page.id", ondelete="CASCADE", name="fk_page_event_page_id_page"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        _at("at"),
    )
    op.create_index("ix_page_event_page_id", "page_event", ["page_id"])
    op.create_table(
        "page_ticket",
        sa.Column("ticket_id", sa.Uuid(), primary_key=True),
        sa.Column(
            "page_id",
            sa.Uuid(),
            sa.ForeignKey("page.id", ondelete="CASCADE", name="fk_page_ticket_page_id_page"),
            nullable=False,
        ),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("reporter_name", sa.String(200), nullable=False),
        sa.Column("reporter_email", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        _at("filed_at", default=False),
        _at("joined_at"),
        _at("reporter_acknowledged_at", nullable=True),
    )
    op.create_index("ix_page_ticket_page_id", "page_ticket", ["page_id"])
    op.create_table(
        "page_monitor",
        sa.Column(
            "page_id",
            sa.Uuid(),
            sa.ForeignKey("page.id", ondelete="CASCADE", name="fk_page_monitor_page_id_page"),
            nullable=False,
        ),
        sa.Column("monitor_id", sa.Uuid(), nullable=False),
        sa.Column("down", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.PrimaryKeyConstraint("page_id", "monitor_id", name="pk_page_monitor"),
    )
    op.create_table(
        "status_page_link",
        sa.Column("status_page", sa.String(200), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("products", postgresql.ARRAY(sa.String(100)), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        _at("changed_at", default=False),
    )
    op.create_table(
        "handled_signal",
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        _at("at", default=False),
        sa.Column("kind", sa.String(30), nullable=False),
        _at("handled_at"),
        sa.PrimaryKeyConstraint("subject_id", "at", "kind", name="pk_handled_signal"),
    )


def downgrade() -> None:
    for table in (
        "handled_signal",
        "status_page_link",
        "page_monitor",
        "page_ticket",
        "page_event",
        "page",
        "escalation_policy",
        "schedule_override",
        "schedule_layer",
        "schedule",
        "notification_rule",
        "person",
    ):
        op.drop_table(table)
