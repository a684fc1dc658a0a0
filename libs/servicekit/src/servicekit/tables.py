"""Tables every service keeps in its own schema: outbox, inbox, timers, API keys.

The tables carry no schema name; each service's connections put its own schema
first on the search_path, so the same definitions serve every service.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """A MetaData with Klaxon's constraint naming convention, so migrations are stable."""
    return MetaData(naming_convention=NAMING_CONVENTION)


plumbing = new_metadata()

outbox_event = Table(
    "outbox_event",
    plumbing,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("routing_key", String(200), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("correlation_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("parked_at", DateTime(timezone=True)),
    Column("retry_at", DateTime(timezone=True)),
    Index("ix_outbox_event_unparked_seq", "seq", postgresql_where=text("parked_at IS NULL")),
)
"""Events waiting to be published (`servicekit.outbox`). A row the broker refused waits
until ``retry_at``; one refused ``relay_max_attempts`` times is parked (``parked_at``) and
waits for the ``parked retry`` command (`servicekit.parking`)."""

# An insert wakes the schema's relay (delivered at commit, never on rollback) unless an
# older row is already waiting. A relay is then at work on that row, and after every
# batch it looks again within milliseconds (`servicekit.outbox.Relay`), so it finds this
# row without being told. Skipping matters under load: Postgres serializes the commits
# of all notifying transactions on one lock, held through the WAL flush.
# An INSERT that adds no row (one whose SELECT found nothing to add) wakes nobody. A row
# that was refused and waits for its retry, or is parked, has no relay at work on it, so
# it silences nobody; a refused row put back by the relay wakes nobody.
NOTIFY_OUTBOX_FUNCTION = (
    "CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql"
    " SET search_path FROM CURRENT AS $$ BEGIN"
    " IF EXISTS (SELECT 1 FROM inserted WHERE retry_at IS NULL AND parked_at IS NULL)"
    " AND NOT EXISTS (SELECT 1 FROM outbox_event WHERE seq < (SELECT min(seq) FROM inserted)"
    " AND parked_at IS NULL AND retry_at IS NULL) THEN"
    " PERFORM pg_notify('klaxon_outbox_' || TG_TABLE_SCHEMA, ''); END IF;"
    " RETURN NULL; END $$"
)
"""The outbox trigger's function (the trigger is created by the plumbing's first revision);
`servicekit.migrations.upgrade` runs it again after every upgrade, so a schema made with an
older version of it gets this one."""

inbox_event = Table(
    "inbox_event",
    plumbing,
    Column("event_id", Uuid, primary_key=True),
    Column("event_type", String(200), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_inbox_event_received_at", "received_at"),
)

timer = Table(
    "timer",
    plumbing,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("kind", String(100), nullable=False),
    Column("key", String(300), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("parked_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("kind", "key"),
    Index("ix_timer_due_at", "due_at"),
    Index("ix_timer_claim", "kind", "due_at", postgresql_where=text("parked_at IS NULL")),
)

api_key = Table(
    "api_key",
    plumbing,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", ARRAY(String(50)), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

delivery = Table(
    "delivery",
    plumbing,
    Column("id", Uuid, primary_key=True, server_default=text("gen_random_uuid()")),
    Column("dedupe_key", String(300), nullable=False, unique=True),
    Column("channel", String(50), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("state", String(20), nullable=False, server_default=text("'queued'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("due_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("result", JSONB),
    Column("correlation_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Index(
        "ix_delivery_due_at",
        "due_at",
        postgresql_where=text("state IN ('queued', 'sending')"),
    ),
)
"""An effect outside the database (an email, an SMS, an HTTP call), sent by
`servicekit.deliveries` outside any transaction. ``state``: queued, sending (claimed
until ``due_at``), sent, failed (given up on)."""

catalogue_product = Table(
    "catalogue_product",
    plumbing,
    Column("slug", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
"""Read model of intake's product catalogue, kept from ``product.changed`` events (newest
``changed_at`` wins). Intake keeps the catalogue itself in its own ``product`` table."""
