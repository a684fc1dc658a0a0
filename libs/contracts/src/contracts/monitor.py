"""Events published by the monitor service (HTTP checks, heartbeats, patch windows)."""

import uuid
from datetime import datetime
from typing import ClassVar

from contracts.common import ProductRef
from contracts.envelope import EventPayload


class MonitorWentDown(EventPayload):
    """A monitor's checks failed enough times in a row to call its target down."""

    event_type: ClassVar[str] = "monitor.down"

    monitor_id: uuid.UUID
    monitor_name: str
    product: ProductRef
    component: str | None = None
    url: str | None = None
    error: str
    down_since: datetime
    in_patch_window: bool = False


class MonitorCameUp(EventPayload):
    """A monitor that was down is passing again."""

    event_type: ClassVar[str] = "monitor.up"

    monitor_id: uuid.UUID
    monitor_name: str
    product: ProductRef
    component: str | None = None
    down_since: datetime
    up_at: datetime


class MonitorVerificationPassed(EventPayload):
    """A patch window ended and monitoring saw the outage it caused: monitoring works."""

    event_type: ClassVar[str] = "monitor.verification_passed"

    patch_window_id: uuid.UUID
    product: ProductRef
    starts_at: datetime
    ends_at: datetime
    monitor_ids: tuple[uuid.UUID, ...]
    first_alert_at: datetime


class MonitorVerificationFailed(EventPayload):
    """A patch window ended with no alert from its monitors: monitoring must be broken."""

    event_type: ClassVar[str] = "monitor.verification_failed"

    patch_window_id: uuid.UUID
    product: ProductRef
    starts_at: datetime
    ends_at: datetime
    monitor_ids: tuple[uuid.UUID, ...]
    reason: str
