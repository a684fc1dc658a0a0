"""The envelope is strict, the payloads are tolerant, and every event survives the wire."""

import enum
import json
import types
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from contracts import EVENT_TYPES, Envelope, EventPayload, UnknownEventType, parse_payload
from contracts.common import HealthState, Person, ProductRef, Severity
from contracts.intake import TicketFiled
from contracts.registry import payload_model

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
M = TypeVar("M", bound=BaseModel)


def _sample(annotation: Any) -> Any:
    """A valid value for a field of type `annotation`."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return _sample(next(arg for arg in get_args(annotation) if arg is not type(None)))
    if origin is tuple:
        return (_sample(get_args(annotation)[0]),)
    if origin is dict:
        return {"key": "value"}
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation))
        if issubclass(annotation, BaseModel):
            return _build(annotation)
        if issubclass(annotation, bool):
            return True
        if issubclass(annotation, int):
            return 2
        if issubclass(annotation, float):
            return 2.5
        if issubclass(annotation, datetime):
            return NOW
        if issubclass(annotation, uuid.UUID):
            return uuid.uuid4()
        if issubclass(annotation, str):
            return "a value"
    raise AssertionError(f"no sample value for {annotation!r}; extend _sample")


def _build(model: type[M]) -> M:
    return model(
        **{
            name: "someone@example.com" if name == "email" else _sample(field.annotation)
            for name, field in model.model_fields.items()
        }
    )


def _ticket_filed() -> TicketFiled:
    return TicketFiled(
        ticket_id=uuid.uuid4(),
        number="T-1",
        organization="Acme",
        reporter=Person(name="Ada", email="ada@example.com"),
        product=ProductRef(slug="billing", name="Billing"),
        severity=Severity.CRITICAL,
        subject="Billing is down",
        description="500 on every page",
        monitoring_state=HealthState.DOWN,
        filed_at=NOW,
    )


def _envelope_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "type": "ticket.filed",
        "version": 1,
        "occurred_at": NOW,
        "producer": "intake",
        "correlation_id": uuid.uuid4(),
        "payload": {},
    }
    fields.update(overrides)
    return fields


def test_envelope_accepts_well_formed_fields() -> None:
    envelope = Envelope(**_envelope_fields())

    assert envelope.causation_id is None


def test_envelope_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Envelope(**_envelope_fields(tenant="acme"))


def test_envelope_refuses_unknown_fields_on_the_wire() -> None:
    wire = Envelope(**_envelope_fields()).model_dump(mode="json")
    wire["tenant"] = "acme"

    with pytest.raises(ValidationError, match="extra"):
        Envelope.from_json(json.dumps(wire))


def test_envelope_refuses_naive_timestamps() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Envelope(**_envelope_fields(occurred_at=datetime(2024, 5, 1, 12, 0)))


def test_envelope_refuses_naive_timestamps_in_json() -> None:
    body = Envelope(**_envelope_fields()).to_json().replace(b"Z", b"").replace(b"+00:00", b"")

    with pytest.raises(ValidationError):
        Envelope.from_json(body)


def test_envelope_stores_timestamps_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    envelope = Envelope(**_envelope_fields(occurred_at=datetime(2024, 5, 1, 14, 0, tzinfo=paris)))

    assert envelope.occurred_at == NOW
    assert envelope.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("id", 42),
        ("version", "1"),
        ("version", 0),
        ("type", "Ticket Filed"),
        ("type", "ticket"),
        ("producer", ""),
        ("correlation_id", None),
        ("payload", ["not", "a", "mapping"]),
    ],
)
def test_envelope_refuses_bad_types(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Envelope(**_envelope_fields(**{field: value}))


def test_envelope_refuses_missing_fields() -> None:
    fields = _envelope_fields()
    del fields["correlation_id"]

    with pytest.raises(ValidationError):
        Envelope(**fields)


def test_envelope_refuses_malformed_json() -> None:
    with pytest.raises(ValidationError):
        Envelope.from_json(b"{not json")


def test_wrap_starts_a_new_correlation_without_a_cause() -> None:
    envelope = Envelope.wrap(_ticket_filed(), producer="intake")

    assert envelope.type == "ticket.filed"
    assert envelope.version == 1
    assert envelope.producer == "intake"
    assert envelope.correlation_id == envelope.id
    assert envelope.causation_id is None
    assert envelope.occurred_at.tzinfo is not None


def test_wrap_keeps_the_correlation_of_its_cause() -> None:
    cause = Envelope.wrap(_ticket_filed(), producer="intake", correlation_id=uuid.uuid4())
    effect = Envelope.wrap(
        _build(payload_model("page.notified")), producer="notifier", causation=cause
    )

    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == cause.id
    assert effect.id not in (cause.id, cause.correlation_id)


def test_wrap_prefers_an_explicit_correlation_id() -> None:
    cause = Envelope.wrap(_ticket_filed(), producer="intake")
    explicit = uuid.uuid4()

    effect = Envelope.wrap(
        _ticket_filed(), producer="intake", causation=cause, correlation_id=explicit
    )

    assert effect.correlation_id == explicit
    assert effect.causation_id == cause.id


def test_parse_payload_refuses_an_unknown_event_type() -> None:
    envelope = Envelope(**_envelope_fields(type="ticket.vanished"))

    with pytest.raises(UnknownEventType):
        parse_payload(envelope)


def test_parse_payload_refuses_an_unknown_version() -> None:
    wrapped = Envelope.wrap(_ticket_filed(), producer="intake")
    envelope = wrapped.model_copy(update={"version": 99})

    with pytest.raises(UnknownEventType):
        parse_payload(envelope)


def test_parse_payload_refuses_a_bad_payload() -> None:
    wire = Envelope.wrap(_ticket_filed(), producer="intake").model_dump(mode="json")
    wire["payload"]["ticket_id"] = "not-a-uuid"
    del wire["payload"]["reporter"]

    envelope = Envelope.from_json(json.dumps(wire))

    with pytest.raises(ValidationError):
        parse_payload(envelope)


def test_payloads_ignore_fields_they_do_not_know() -> None:
    wire = Envelope.wrap(_ticket_filed(), producer="intake").model_dump(mode="json")
    wire["payload"]["added_later"] = "by a newer producer"

    payload = parse_payload(Envelope.from_json(json.dumps(wire)))

    assert isinstance(payload, TicketFiled)
    assert not hasattr(payload, "added_later")


def test_every_event_type_is_registered_under_its_own_routing_key() -> None:
    for event_type, model in EVENT_TYPES.items():
        assert issubclass(model, EventPayload)
        assert model.event_type == event_type
        assert payload_model(event_type, model.event_version) is model


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_round_trips_through_the_wire(event_type: str) -> None:
    payload = _build(EVENT_TYPES[event_type])
    sent = Envelope.wrap(payload, producer="test")

    received = Envelope.from_json(sent.to_json())

    assert received == sent
    assert parse_payload(received) == payload
