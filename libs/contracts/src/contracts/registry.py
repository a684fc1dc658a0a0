"""Every event type Klaxon knows, by routing key and version, and how older versions are
upcast to the current one."""

from collections.abc import Callable
from typing import Any, TypeVar

from contracts.envelope import Envelope, EventPayload, UnknownEventType
from contracts.intake import TicketFiled, TicketStatusChanged
from contracts.monitor import (
    MonitorCameUp,
    MonitorCertificateExpiring,
    MonitorDegraded,
    MonitorVerificationFailed,
    MonitorVerificationPassed,
    MonitorWentDown,
)
from contracts.notifier import (
    NotificationDelivered,
    NotificationFailed,
    NotificationRequested,
    PageAcknowledged,
    PageEscalated,
    PageNotified,
    PageOpened,
    PageResolved,
    ReporterAcknowledged,
)
from contracts.products import CatalogueRequested, ProductChanged
from contracts.statuspage import (
    ComponentStatusChanged,
    IncidentNoticePosted,
    IncidentOpened,
    IncidentResolved,
    StatusPagePublished,
    StatusUpdateDueSoon,
    StatusUpdateOverdue,
)

_ALL: tuple[type[EventPayload], ...] = (
    TicketFiled,
    TicketStatusChanged,
    ProductChanged,
    CatalogueRequested,
    MonitorWentDown,
    MonitorCameUp,
    MonitorDegraded,
    MonitorCertificateExpiring,
    MonitorVerificationPassed,
    MonitorVerificationFailed,
    PageOpened,
    PageNotified,
    PageEscalated,
    PageAcknowledged,
    PageResolved,
    ReporterAcknowledged,
    NotificationRequested,
    NotificationDelivered,
    NotificationFailed,
    IncidentOpened,
    IncidentNoticePosted,
    IncidentResolved,
    ComponentStatusChanged,
    StatusUpdateOverdue,
    StatusUpdateDueSoon,
    StatusPagePublished,
)

Upcaster = Callable[[Any], EventPayload]
"""Turns a payload of one version into the same event's next version (v1 -> v2)."""

U = TypeVar("U", bound=Upcaster)


class Registry:
    """Payload models by (event type, version), and the upcasters from each older version.

    A consumer parses a payload with the model of the version its envelope names, then
    upcasts it step by step (v1 -> v2 -> ...) to the newest version registered, so a
    handler only ever sees the current version. An envelope naming a version this build
    has no model for (a newer one, or one dropped) raises `UnknownEventType`, and the
    consumer dead-letters it (``replay-dead-letters`` once the consumer knows it).

    Moving a payload to v2: add the v2 model (``event_version = 2``), keep the v1 model
    under another name, register both with an upcaster from 1; deploy the consumers, then
    the producer (which publishes the newest model it has). Consumers upgraded first take
    v1 and v2 alike, so no event is dead-lettered on the way.
    """

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[EventPayload]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, *models: type[EventPayload]) -> None:
        """Add payload models, each under its (event_type, event_version)."""
        for model in models:
            key = (model.event_type, model.event_version)
            if self._models.get(key, model) is not model:
                raise ValueError(f"two payload models for {key[0]!r} version {key[1]}")
            self._models[key] = model

    def add_upcaster(self, event_type: str, from_version: int, upcast: Upcaster) -> None:
        """Register how a `from_version` payload of `event_type` becomes the next version."""
        key = (event_type, from_version)
        if key in self._upcasters:
            raise ValueError(f"two upcasters from {event_type!r} version {from_version}")
        self._upcasters[key] = upcast

    def upcaster(self, event_type: str, from_version: int) -> Callable[[U], U]:
        """Decorator form of `add_upcaster`."""

        def register(upcast: U) -> U:
            self.add_upcaster(event_type, from_version, upcast)
            return upcast

        return register

    def current(self) -> dict[str, type[EventPayload]]:
        """The newest model of each event type."""
        newest: dict[str, type[EventPayload]] = {}
        for (event_type, _), model in sorted(self._models.items(), key=lambda item: item[0]):
            newest[event_type] = model
        return newest

    def model(self, event_type: str, version: int) -> type[EventPayload]:
        """The model of exactly this version; raises `UnknownEventType`."""
        model = self._models.get((event_type, version))
        if model is None:
            raise UnknownEventType(f"unknown event type {event_type!r} version {version}")
        return model

    def check(self) -> None:
        """Raise ValueError unless every older version can be upcast to the newest."""
        newest = {t: m.event_version for t, m in self.current().items()}
        for event_type, version in self._models:
            if version < newest[event_type] and (event_type, version) not in self._upcasters:
                raise ValueError(f"no upcaster from {event_type!r} version {version}")
        for event_type, version in self._upcasters:
            if (event_type, version + 1) not in self._models:
                raise ValueError(
                    f"an upcaster from {event_type!r} version {version}, but no version"
                    f" {version + 1} model"
                )

    def parse(self, envelope: Envelope) -> EventPayload:
        """The envelope's payload, as the newest version; raises `UnknownEventType`,
        pydantic's ValidationError, TypeError (an upcaster returned another version) or
        whatever an upcaster raises."""
        model = self.model(envelope.type, envelope.version)
        return self.upcast(model.model_validate(envelope.payload, strict=False))

    def upcast(self, payload: EventPayload) -> EventPayload:
        """`payload` carried forward to its event type's newest version."""
        event_type = payload.event_type
        newest = self.current()[event_type].event_version
        while payload.event_version < newest:
            version = payload.event_version
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEventType(f"no upcaster from {event_type!r} version {version}")
            payload = step(payload)
            if payload.event_type != event_type or payload.event_version != version + 1:
                raise TypeError(
                    f"the upcaster from {event_type!r} version {version} returned"
                    f" {payload.event_type!r} version {payload.event_version}"
                )
        return payload


_OLDER: tuple[type[EventPayload], ...] = ()
"""Older versions of payloads still accepted (each with an upcaster in `REGISTRY`)."""

REGISTRY = Registry()
"""Every event Klaxon knows, each version, and the upcasters between them."""
REGISTRY.register(*_ALL, *_OLDER)
REGISTRY.check()

EVENT_TYPES: dict[str, type[EventPayload]] = REGISTRY.current()
"""The current (newest) payload model of each event type."""
if len(EVENT_TYPES) != len(_ALL):
    raise RuntimeError("two payload models share one event type")


def payload_model(event_type: str, version: int = 1) -> type[EventPayload]:
    """The payload model for a routing key and version."""
    return REGISTRY.model(event_type, version)
