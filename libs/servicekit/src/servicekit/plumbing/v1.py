"""The plumbing tables as the first revision of every service created them. Frozen:
change a plumbing table with a revision in ``servicekit/plumbing/versions``, never here."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

_NOTIFY_OUTBOX_V1 = (
    "CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql"
    " SET search_path FROM CURRENT AS $$ BEGIN"
    " IF EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM outbox_event"
    " WHERE seq < (SELECT min(seq) FROM inserted)) THEN"
    " PERFORM pg_notify('klaxon_outbox_' || TG_TABLE_SCHEMA, ''); END IF;"
    " RETURN NULL; END $$"
)


def _created_at() -> sa.Column[Any]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def create_plumbing_tables(op: Any) -> None:
    """Create the outbox (with its NOTIFY trigger), inbox, timer and API-key tables."""
    op.create_table(
        "outbox_event",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("correlation_id", sa.Uuid, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox_event"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_event_id"),
    )
    op.execute(_NOTIFY_OUTBOX_V1)
    op.execute(
        "CREATE TRIGGER outbox_event_notify AFTER INSERT ON outbox_event"
        " REFERENCING NEW TABLE AS inserted"
        " FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox()"
    )
    op.create_table(
        "inbox_event",
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_inbox_event"),
    )
    op.create_index("ix_inbox_event_received_at", "inbox_event", ["received_at"])
    op.create_table(
        "timer",
        sa.Column("id", sa.Uuid, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_timer"),
        sa.UniqueConstraint("kind", "key", name="uq_timer_kind_key"),
    )
    op.create_index("ix_timer_due_at", "timer", ["due_at"])
    op.create_table(
        "api_key",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.String(50)), nullable=False),
        _created_at(),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_api_key"),
        sa.UniqueConstraint("key_hash", name="uq_api_key_key_hash"),
    )


def drop_plumbing_tables(op: Any) -> None:
    """Drop what `create_plumbing_tables` made."""
    for table in ("api_key", "timer", "inbox_event", "outbox_event"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS notify_outbox()")
