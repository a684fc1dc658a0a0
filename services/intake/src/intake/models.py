"""Tables of the intake schema: products, tickets and their timeline, attachments,
idempotency keys, and the product-health read model fed by monitor and incident events."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from servicekit.tables import new_metadata

metadata = new_metadata()

ticket_number_seq = Sequence("ticket_number_seq", start=1000, metadata=metadata)
"""Source of human-friendly ticket numbers: KLX-1000, KLX-1001, ..."""

product = Table(
    "product",
    metadata,
    Column("slug", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

ticket = Table(
    "ticket",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "number",
        String(20),
        nullable=False,
        unique=True,
        server_default=text("'KLX-' || nextval('ticket_number_seq')"),
    ),
    Column("organization", String(200), nullable=False),
    Column("reporter_name", String(200), nullable=False),
    Column("reporter_email", String(320), nullable=False),
    Column("product_slug", ForeignKey("product.slug"), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("urls", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("error_text", Text, nullable=False, server_default=""),
    Column("status", String(30), nullable=False, server_default="new"),
    Column("monitoring_state", String(20), nullable=False),
    Column("api_key_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_ticket_created_at_id", "created_at", "id"),
    Index("ix_ticket_organization_severity", "organization", "severity"),
)

ticket_event = Table(
    "ticket_event",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("ticket_id", ForeignKey("ticket.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("status", String(30)),
    Column("detail", Text, nullable=False, server_default=""),
    Column("event_id", Uuid),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_ticket_event_ticket_id", "ticket_id"),
)
"""The ticket's timeline: one row per thing that happened to it."""

attachment = Table(
    "attachment",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("seq", BigInteger, Identity(always=True), nullable=False),
    Column("ticket_id", ForeignKey("ticket.id", ondelete="CASCADE"), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_attachment_ticket_id", "ticket_id"),
)

idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("api_key_id", Uuid, nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer),
    Column("response", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("api_key_id", "key"),
    Index("ix_idempotency_key_created_at", "created_at"),
)
"""Idempotency-Key of a POST, per API key, with the response to replay; forgotten after
``idempotency_retention_s``."""

product_signal = Table(
    "product_signal",
    metadata,
    Column("product_slug", String(100), nullable=False),
    Column("source", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("product_slug", "source"),
)
"""Product-health read model: the latest state each monitor/incident/component reported."""
