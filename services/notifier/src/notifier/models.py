"""Tables of the notifier schema: people and their notification rules, schedules (layers,
members, overrides), escalation policies (levels), pages (tickets, monitors, timeline), the
status-page links read model, the deadlines already acted on, and the secret that signs
acknowledge/resolve links."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from servicekit.tables import new_metadata

metadata = new_metadata()

person = Table(
    "person",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("phone", String(40)),
    Column("slack", String(200)),
    Column("time_zone", String(64), nullable=False, server_default="UTC"),
    Column("ical_token", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
"""Someone who can be paged; `email`, `phone` and `slack` are their contact methods."""

notification_rule = Table(
    "notification_rule",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("person_id", ForeignKey("person.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("delay_s", Integer, nullable=False, server_default=text("0")),
    Index("ix_notification_rule_person_id", "person_id"),
)
"""How a person is reached when paged: this channel, this long after the page reached them
unacknowledged. A person without rules gets an email at once."""

schedule = Table(
    "schedule",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("ical_token", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

schedule_layer = Table(
    "schedule_layer",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("schedule_id", ForeignKey("schedule.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("rotation_start", DateTime, nullable=False),
    Column("shift_unit", String(10), nullable=False),
    Column("shift_count", Integer, nullable=False),
    Column("members", ARRAY(Uuid), nullable=False),
    Column("restrictions", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Index("ix_schedule_layer_schedule_id", "schedule_id"),
)
"""A rotation: `members` take turns, a shift of `shift_count` `shift_unit`s each, handing off
at `rotation_start`'s wall-clock time in the schedule's zone (a local time, so handoffs stay
at 09:00 across DST). Higher positions cover lower ones; `restrictions` (e.g. weekdays
09:00-17:00) limit when a layer is on."""

schedule_override = Table(
    "schedule_override",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("schedule_id", ForeignKey("schedule.id", ondelete="CASCADE"), nullable=False),
    Column("person_id", ForeignKey("person.id", ondelete="CASCADE"), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_schedule_override_schedule_id_starts_at", "schedule_id", "starts_at"),
)
"""Someone covers a schedule for a period, whatever its layers say."""

escalation_policy = Table(
    "escalation_policy",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("product_slug", String(100), unique=True),
    Column("is_default", Boolean, nullable=False, server_default=text("false")),
    Column("repeat", Integer, nullable=False, server_default=text("0")),
    Column("levels", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(
        "uq_escalation_policy_default",
        "is_default",
        unique=True,
        postgresql_where=text("is_default"),
    ),
)
"""Who is paged, in order: `levels` is a list of ``{"target_type": "schedule"|"person",
"target_id", "timeout_s"}``; the whole ladder runs `repeat` more times. One policy per
product; the default one serves the rest. Copied onto a page when it opens."""

page = Table(
    "page",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("dedup_key", String(300), nullable=False),
    Column("product_slug", String(100), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("source", String(20), nullable=False),
    Column("summary", Text, nullable=False),
    Column("state", String(20), nullable=False, server_default="triggered"),
    Column("urgency", String(10), nullable=False, server_default="high"),
    Column("policy", JSONB, nullable=False),
    Column("level", Integer, nullable=False, server_default=text("1")),
    Column("round", Integer, nullable=False, server_default=text("1")),
    Column("opened_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("notified_at", DateTime(timezone=True)),
    Column("oncall_name", String(200)),
    Column("oncall_email", String(320)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", Uuid),
    Column("acknowledged_by_name", String(200)),
    Column("resolved_at", DateTime(timezone=True)),
    Index(
        "uq_page_dedup_key_open",
        "dedup_key",
        unique=True,
        postgresql_where=text("state <> 'resolved'"),
    ),
    Index("ix_page_opened_at", "opened_at"),
)
"""An incident for the on-call engineer: triggered -> acknowledged -> resolved. At most one
open page per `dedup_key` (the product for tickets, the monitor for checks): the unique index
makes later triggers join it. `policy` is the escalation policy as it was when it opened;
`level`/`round` say where its ladder is. `notified_at` is when the first notification was
accepted by its channel; `oncall_*` whom it reached."""

page_event = Table(
    "page_event",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("page_id", ForeignKey("page.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_page_event_page_id", "page_id"),
)
"""The page's timeline: every step, notification, failure and action."""

page_ticket = Table(
    "page_ticket",
    metadata,
    Column("ticket_id", Uuid, primary_key=True),
    Column("page_id", ForeignKey("page.id", ondelete="CASCADE"), nullable=False),
    Column("number", String(40), nullable=False),
    Column("reporter_name", String(200), nullable=False),
    Column("reporter_email", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("joined_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("reporter_acknowledged_at", DateTime(timezone=True)),
    Index("ix_page_ticket_page_id", "page_id"),
)
"""A CRITICAL ticket grouped into a page, with what the reporter's email needs.
`reporter_acknowledged_at`: when the reporter's acknowledgement email was accepted."""

page_monitor = Table(
    "page_monitor",
    metadata,
    Column("page_id", ForeignKey("page.id", ondelete="CASCADE"), nullable=False),
    Column("monitor_id", Uuid, nullable=False),
    Column("down", Boolean, nullable=False, server_default=text("true")),
    PrimaryKeyConstraint("page_id", "monitor_id"),
)
"""Monitors whose alerts are on a page; `monitor.up` resolves a page all of whose monitors
are up again and that no ticket joined."""

status_page_link = Table(
    "status_page_link",
    metadata,
    Column("status_page", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("title", String(200), nullable=False, server_default=""),
    Column("products", ARRAY(String(100)), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
"""Read model of statuspage-sync's pages: the URL of each and the products it covers
(newest `changed_at` wins)."""

handled_signal = Table(
    "handled_signal",
    metadata,
    Column("subject_id", Uuid, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("subject_id", "at", "kind"),
)
"""A signal already acted on, so each acts once however often (and in whatever order) it
arrives: a status-page deadline of a ticket (``overdue``, ``due_soon``), or a monitor's
recovery from the outage that began `at` (``monitor_up``; a late ``monitor.down`` for that
outage then opens no page)."""

link_secret = Table(
    "link_secret",
    metadata,
    Column("id", Boolean, primary_key=True, server_default=text("true")),
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("id", name="one_row"),
)
"""The one secret acknowledge/resolve links are signed with when ``KLAXON_LINK_SECRET`` is
not set: made by whichever replica starts first, read by every one (`notifier.link_secret`)."""
