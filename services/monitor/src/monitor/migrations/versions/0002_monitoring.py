"""The monitor's own tables: monitors, check state, results, rollups, regions, replicas,
patch windows and verification runs.

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

TABLES = (
    "verification_run",
    "patch_window",
    "replica",
    "region",
    "rollup_daily",
    "rollup_hourly",
    "check_result",
    "check_state",
    "monitor",
)


def upgrade() -> None:
    op.create_table(
        "check_result",
        sa.Column("monitor_key", sa.Integer(), nullable=False),
        sa.Column("at_s", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("region_key", sa.SmallInteger(), nullable=False),
        sa.Column("outcome", sa.SmallInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_table(
        "monitor",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Integer(), sa.Identity(always=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("product", sa.String(length=100), nullable=False),
        sa.Column("component", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("target", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("recheck_s", sa.Float(), nullable=False),
        sa.Column("failures_to_down", sa.Integer(), nullable=False),
        sa.Column("successes_to_up", sa.Integer(), nullable=False),
        sa.Column(
            "regions",
            postgresql.ARRAY(sa.String(length=50)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.String(length=50)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "state", sa.String(length=10), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column(
            "state_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("heartbeat_token", sa.String(length=64), nullable=True),
        sa.Column("last_ping_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cert_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cert_warned_for", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor")),
        sa.UniqueConstraint("heartbeat_token", name=op.f("uq_monitor_heartbeat_token")),
        sa.UniqueConstraint("key", name=op.f("uq_monitor_key")),
        sa.UniqueConstraint("name", name=op.f("uq_monitor_name")),
    )
    op.create_table(
        "patch_window",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column(
            "timezone", sa.String(length=64), server_default=sa.text("'UTC'"), nullable=False
        ),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "monitor_ids",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "products",
            postgresql.ARRAY(sa.String(length=100)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.String(length=50)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patch_window")),
        sa.UniqueConstraint("name", name=op.f("uq_patch_window_name")),
    )
    op.create_table(
        "region",
        sa.Column("key", sa.SmallInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_region")),
        sa.UniqueConstraint("name", name=op.f("uq_region_name")),
    )
    op.create_table(
        "replica",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replica")),
    )
    op.create_table(
        "rollup_daily",
        sa.Column("monitor_key", sa.Integer(), nullable=False),
        sa.Column("day_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("latency_p50_ms", sa.Integer(), nullable=True),
        sa.Column("latency_p95_ms", sa.Integer(), nullable=True),
        sa.Column("latency_p99_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("monitor_key", "day_at", name=op.f("pk_rollup_daily")),
    )
    op.create_table(
        "rollup_hourly",
        sa.Column("monitor_key", sa.Integer(), nullable=False),
        sa.Column("hour_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("latency_p50_ms", sa.Integer(), nullable=True),
        sa.Column("latency_p95_ms", sa.Integer(), nullable=True),
        sa.Column("latency_p99_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("monitor_key", "hour_at", name=op.f("pk_rollup_hourly")),
    )
    op.create_table(
        "verification_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patch_window_id", sa.Uuid(), nullable=False),
        sa.Column("window_name", sa.String(length=200), nullable=False),
        sa.Column("product", sa.String(length=100), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("monitor_ids", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_run")),
        sa.UniqueConstraint(
            "patch_window_id",
            "product",
            "starts_at",
            name=op.f("uq_verification_run_patch_window_id_product_starts_at"),
        ),
    )
    op.create_table(
        "check_state",
        sa.Column("monitor_id", sa.Uuid(), nullable=False),
        sa.Column("region", sa.String(length=50), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.Uuid(), nullable=True),
        sa.Column(
            "state", sa.String(length=10), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("successes", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("slow", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_reason", sa.String(length=30), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitor.id"],
            name=op.f("fk_check_state_monitor_id_monitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("monitor_id", "region", name=op.f("pk_check_state")),
    )
    op.create_index("ix_check_result_at_s", "check_result", ["at_s"], postgresql_using="brin")
    op.create_index("ix_check_result_monitor_key", "check_result", ["monitor_key"], unique=False)
    op.create_index("ix_monitor_tags", "monitor", ["tags"], unique=False, postgresql_using="gin")
    op.create_index(op.f("ix_monitor_product"), "monitor", ["product"], unique=False)
    op.create_index(
        "ix_verification_run_decided_at", "verification_run", ["decided_at"], unique=False
    )
    op.create_index(
        "ix_check_state_region_due_at", "check_state", ["region", "due_at"], unique=False
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
