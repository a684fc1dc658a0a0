"""The product catalogue, owned by intake and mirrored by every other service.

Intake publishes `ProductChanged` whenever a product is registered, renamed,
retired or brought back, and republishes the whole catalogue when any service
asks with `CatalogueRequested` (a service deployed later, or one whose read
model was lost). A read model applies a change only if it is newer than what it
holds (``changed_at``), so replays and out-of-order deliveries are harmless.
"""

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import Field

from contracts.envelope import EventPayload


class ProductChanged(EventPayload):
    """A product's current state in intake's catalogue (registered, updated or retired)."""

    event_type: ClassVar[str] = "product.changed"

    slug: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    active: bool
    changed_at: datetime


class CatalogueRequested(EventPayload):
    """A service asks intake to republish every product (as `ProductChanged`)."""

    event_type: ClassVar[str] = "product.catalogue_requested"

    request_id: uuid.UUID
    requested_by: str
