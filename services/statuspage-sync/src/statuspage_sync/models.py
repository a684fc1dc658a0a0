"""Tables of the statuspage schema, mirroring Atlassian Statuspage's model.

A status page has component groups and components; incidents (and scheduled
maintenances, which are incidents with a window) with their notices; deadlines
that watch the 30-minute promises; what each monitor last said; and each
component's status history, from which the uptime bars are drawn.
"""

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from servicekit.tables import new_metadata

metadata = new_metadata()


def _created() -> Column[Any]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Column[Any]:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


status_page = Table(
    "status_page",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("slug", String(60), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("time_zone", String(64), nullable=False, server_default=text("'Etc/UTC'")),
    Column("products", ARRAY(String(100)), nullable=False, server_default=text("'{}'")),
    Column("auto_open_incidents", Boolean, nullable=False, server_default=text("true")),
    Column("auto_resolve_incidents", Boolean, nullable=False, server_default=text("true")),
    Column("version", BigInteger, nullable=False, server_default=text("1")),
    _created(),
    _updated(),
)
"""``version`` goes up in every transaction that changes what the page shows; replicas
learn of it by NOTIFY and render the page again (see `statuspage_sync.cache`)."""

component_group = Table(
    "component_group",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("status_page_id", ForeignKey("status_page.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("position", Integer, nullable=False, server_default=text("0")),
    _created(),
    _updated(),
    UniqueConstraint("status_page_id", "name"),
)

component = Table(
    "component",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("status_page_id", ForeignKey("status_page.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", ForeignKey("component_group.id", ondelete="SET NULL")),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("position", Integer, nullable=False, server_default=text("0")),
    Column("only_show_if_degraded", Boolean, nullable=False, server_default=text("false")),
    Column("product_slug", String(100)),
    Column("monitor_ids", ARRAY(Uuid), nullable=False, server_default=text("'{}'")),
    Column("status", String(30), nullable=False, server_default=text("'operational'")),
    Column("status_source", String(20), nullable=False, server_default=text("'monitor'")),
    Column("manual_status", String(30)),
    _created(),
    _updated(),
    UniqueConstraint("status_page_id", "name"),
)
"""``status`` is what the page shows: the manual status while one is set, else under
maintenance during a maintenance window, else the worst of its monitors' verdicts.
A monitor feeds a component listed in ``monitor_ids``, or, when none is listed, one of
the monitor's product whose name is the monitor's component (any, if it names none)."""

monitor_observation = Table(
    "monitor_observation",
    metadata,
    Column("monitor_id", Uuid, primary_key=True),
    Column("monitor_name", String(200), nullable=False),
    Column("product_slug", String(100), nullable=False),
    Column("component", String(200)),
    Column("status", String(30), nullable=False),
    Column("detail", Text, nullable=False, server_default=text("''")),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Index("ix_monitor_observation_product_slug", "product_slug"),
)
"""What each monitor said last (by the event's own time: a late event changes nothing)."""

component_status_span = Table(
    "component_status_span",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("component_id", ForeignKey("component.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(30), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Index("ix_component_status_span_component_id_started_at", "component_id", "started_at"),
)
"""Each component's status history; the open span (no ``ended_at``) is the current one."""

incident = Table(
    "incident",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("status_page_id", ForeignKey("status_page.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False, server_default=text("'incident'")),
    Column("name", String(300), nullable=False),
    Column("status", String(20), nullable=False),
    Column("impact", String(20), nullable=False),
    Column("automatic", Boolean, nullable=False, server_default=text("false")),
    Column("monitor_id", Uuid),
    Column("product_slug", String(100)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("monitoring_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("scheduled_for", DateTime(timezone=True)),
    Column("scheduled_until", DateTime(timezone=True)),
    _created(),
    _updated(),
    Index("ix_incident_status_page_id_created_at", "status_page_id", "created_at"),
)
"""``kind`` incident or maintenance; a maintenance has a window and the statuses
scheduled, in_progress, verifying, completed (impact ``maintenance``)."""

incident_component = Table(
    "incident_component",
    metadata,
    Column("incident_id", ForeignKey("incident.id", ondelete="CASCADE"), nullable=False),
    Column("component_id", ForeignKey("component.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("incident_id", "component_id"),
)

notice = Table(
    "notice",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("incident_id", ForeignKey("incident.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("expected_resolution_at", DateTime(timezone=True)),
    Column("affected_components", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("automatic", Boolean, nullable=False, server_default=text("false")),
    _created(),
    Index("ix_notice_incident_id_created_at", "incident_id", "created_at"),
)
"""An incident update (Statuspage's ``incident_updates``); ``affected_components``
holds ``{code, name, old_status, new_status}`` for each component it moved."""

deadline = Table(
    "deadline",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("status_page_id", ForeignKey("status_page.id", ondelete="CASCADE"), nullable=False),
    Column("ticket_id", Uuid),
    Column("incident_id", Uuid),
    Column("page_id", Uuid),
    Column("product_slug", String(100), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("reporter_name", String(200)),
    Column("reporter_email", String(320)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("remind_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("reminded_at", DateTime(timezone=True)),
    Column("expired_at", DateTime(timezone=True)),
    Column("cleared_at", DateTime(timezone=True)),
    Column("cleared_by", Uuid),
    Column("acknowledged_at", DateTime(timezone=True)),
    _created(),
    Index("ix_deadline_ticket_id", "ticket_id"),
    Index("ix_deadline_incident_id", "incident_id"),
)
"""A promise being watched. ``kind`` no_update_after_report (a CRITICAL report: a notice on
the page by ``due_at``) or no_eta_notice (an incident: a notice with an ETA). ``key`` makes
a redelivered event start nothing twice; ``cleared_by`` is the notice that kept it."""
