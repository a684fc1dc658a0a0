"""The event envelope every message on the bus carries, and the payload base class.

The envelope is parsed strictly: unknown fields, missing fields and naive
timestamps are refused. Payloads follow the tolerant-reader rule instead: a
consumer ignores fields it does not know, so a producer may add optional
fields without a version bump; removing or changing a field bumps `version`, and the
older version stays registered with an upcaster to the new one
(`contracts.registry.Registry`), so consumers hand their handlers the current version.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from contracts.registry import Registry


class EventPayload(BaseModel):
    """Base of every event payload: a frozen value object named in the past tense."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    event_type: ClassVar[str]
    """Routing key and envelope `type`, e.g. ``ticket.filed``."""
    event_version: ClassVar[int] = 1


class UnknownEventType(ValueError):
    """The envelope names an event type (or version) this build does not know."""


class Envelope(BaseModel):
    """Metadata around one payload. `id` is also the AMQP message_id."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: uuid.UUID
    type: str = Field(min_length=1, max_length=200, pattern=r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
    version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=100)
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        producer: str,
        correlation_id: uuid.UUID | None = None,
        causation: Envelope | None = None,
        occurred_at: datetime | None = None,
    ) -> Self:
        """Build the envelope for `payload`; a caused event inherits the cause's correlation."""
        event_id = uuid.uuid4()
        if correlation_id is None:
            correlation_id = causation.correlation_id if causation else event_id
        return cls(
            id=event_id,
            type=payload.event_type,
            version=payload.event_version,
            occurred_at=occurred_at or datetime.now(UTC),
            producer=producer,
            correlation_id=correlation_id,
            causation_id=causation.id if causation else None,
            payload=payload.model_dump(mode="json"),
        )

    def to_json(self) -> bytes:
        """The wire form of this envelope."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> Self:
        """Parse the wire form; raises pydantic.ValidationError on anything malformed."""
        return cls.model_validate_json(body)


def parse_payload(envelope: Envelope, registry: Registry | None = None) -> EventPayload:
    """The typed payload of `envelope`, upcast to the current version of its type (see
    `contracts.registry.Registry`); raises UnknownEventType or ValidationError."""
    from contracts.registry import REGISTRY

    return (registry or REGISTRY).parse(envelope)
