"""Events published by the monitor service (HTTP, TCP and heartbeat checks, patch windows).

A monitor publishes only when its state changes (pending, up, degraded, down,
paused): one slow or failed check publishes nothing. `monitor.down` is confirmed
(several failures in a row, in at least half of the regions that check it) and
says which regions saw what.
"""

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from contracts.common import ProductRef
from contracts.envelope import EventPayload


class RegionView(BaseModel):
    """What one region's checks said when the monitor changed state."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    region: str
    state: str
    """pending, up, degraded or down (that region's confirmed state)."""
    error: str | None = None
    checked_at: datetime | None = None


class MonitorWentDown(EventPayload):
    """A monitor's checks failed enough times in a row, in enough regions, to call it down."""

    event_type: ClassVar[str] = "monitor.down"

    monitor_id: uuid.UUID
    monitor_name: str
    product: ProductRef
    component: str | None = None
    url: str | None = None
    """The checked URL, ``tcp://host:port``, or None for a heartbeat."""
    kind: str = "http"
    reason: str = "unknown"
    """status_code, timeout, dns, connection_refused, tls, keyword, connection,
    refused_address, heartbeat_missed or heartbeat_failed."""
    error: str
    down_since: datetime
    """When the first failed check of this outage ran."""
    confirmed_at: datetime | None = None
    """When the outage was confirmed (the check that made it down)."""
    regions: tuple[RegionView, ...] = ()
    in_patch_window: bool = False
    """The outage began inside a patch window covering this monitor: expected, page at low
    urgency."""


class MonitorCameUp(EventPayload):
    """A monitor that was down (or degraded) is passing again."""

    event_type: ClassVar[str] = "monitor.up"

    monitor_id: uuid.UUID
    monitor_name: str
    product: ProductRef
    component: str | None = None
    down_since: datetime
    up_at: datetime
    downtime_s: float | None = None
    previous_state: str = "down"
    regions: tuple[RegionView, ...] = ()


class MonitorDegraded(EventPayload):
    """A monitor answers, but slower than its threshold, confirmed like an outage."""

    event_type: ClassVar[str] = "monitor.degraded"

    monitor_id: uuid.UUID
    monitor_name: str
    product: ProductRef
    component: str | None = None
    url: str | None = None
    error: str
    degraded_since: datetime
    regions: tuple[RegionView, ...] = ()


class MonitorCertificateExpiring(EventPayload):
    """The TLS certificate of a monitored URL expires within the monitor's warning days."""

    event_type: ClassVar[str] = "monitor.certificate_expiring"

    monitor_id: uuid.UUID
    monitor_name: str
    product: ProductRef
    component: str | None = None
    url: str
    expires_at: datetime
    days_left: float


class FailedCheck(BaseModel):
    """A failed check inside a patch window: the evidence that monitoring works."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    monitor_id: uuid.UUID
    monitor_name: str
    region: str
    at: datetime
    error: str | None = None


class MonitorVerificationPassed(EventPayload):
    """A patch window ended and monitoring saw the outage it caused: monitoring works."""

    event_type: ClassVar[str] = "monitor.verification_passed"

    patch_window_id: uuid.UUID
    product: ProductRef
    starts_at: datetime
    ends_at: datetime
    monitor_ids: tuple[uuid.UUID, ...]
    first_alert_at: datetime
    """The first failed check inside the window."""
    run_id: uuid.UUID | None = None
    window_name: str | None = None
    evidence: tuple[FailedCheck, ...] = ()


class MonitorVerificationFailed(EventPayload):
    """A patch window ended with no failed check from its monitors: monitoring must be broken."""

    event_type: ClassVar[str] = "monitor.verification_failed"

    patch_window_id: uuid.UUID
    product: ProductRef
    starts_at: datetime
    ends_at: datetime
    monitor_ids: tuple[uuid.UUID, ...]
    reason: str
    run_id: uuid.UUID | None = None
    window_name: str | None = None
