"""Events published by the intake service (tickets from the support portal)."""

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import Field

from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.envelope import EventPayload


class TicketFiled(EventPayload):
    """A ticket was filed; a CRITICAL one must page the on-call engineer."""

    event_type: ClassVar[str] = "ticket.filed"

    ticket_id: uuid.UUID
    number: str
    organization: str
    reporter: Person
    product: ProductRef
    severity: Severity
    subject: str
    description: str
    urls: tuple[str, ...] = ()
    error_text: str = ""
    attachment_ids: tuple[uuid.UUID, ...] = ()
    monitoring_state: HealthState = Field(
        description="What monitoring said about the product when the ticket was filed."
    )
    filed_at: datetime


class TicketStatusChanged(EventPayload):
    """A ticket moved along new -> oncall_notified -> acknowledged -> resolved -> closed."""

    event_type: ClassVar[str] = "ticket.status_changed"

    ticket_id: uuid.UUID
    number: str
    product: ProductRef
    old_status: str
    new_status: str
    changed_at: datetime
