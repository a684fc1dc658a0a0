"""Payload versions: the registry is keyed by (type, version) and upcasts older payloads."""

from typing import ClassVar

import pytest
from pydantic import ValidationError

from contracts import Envelope, EventPayload, UnknownEventType, parse_payload
from contracts.registry import EVENT_TYPES, REGISTRY, Registry


class NotedV1(EventPayload):
    """Version 1 of a test-only event: one free-text line."""

    event_type: ClassVar[str] = "test.noted"

    subject: str


class Noted(EventPayload):
    """Version 2: a title and a priority."""

    event_type: ClassVar[str] = "test.noted"
    event_version: ClassVar[int] = 2

    title: str
    priority: int


class NotedV3(EventPayload):
    """A version this build does not register."""

    event_type: ClassVar[str] = "test.noted"
    event_version: ClassVar[int] = 3

    title: str


def noted_registry() -> Registry:
    """A registry with v1 and v2 of ``test.noted`` and the upcaster between them."""
    registry = Registry()
    registry.register(NotedV1, Noted)

    @registry.upcaster("test.noted", 1)
    def v1_to_v2(old: NotedV1) -> Noted:
        return Noted(title=old.subject, priority=3)

    registry.check()
    return registry


def _envelope(payload: EventPayload) -> Envelope:
    return Envelope.wrap(payload, producer="test")


def test_a_v1_payload_is_parsed_as_v2() -> None:
    wire = _envelope(NotedV1(subject="disk full")).to_json()

    payload = noted_registry().parse(Envelope.from_json(wire))

    assert payload == Noted(title="disk full", priority=3)


def test_a_v2_payload_is_parsed_as_it_is() -> None:
    payload = parse_payload(_envelope(Noted(title="x", priority=1)), noted_registry())
    assert payload == Noted(title="x", priority=1)


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(UnknownEventType, match="version 3"):
        noted_registry().parse(_envelope(NotedV3(title="from the future")))


def test_a_v1_payload_is_checked_against_the_v1_model() -> None:
    envelope = _envelope(NotedV1(subject="x")).model_copy(update={"payload": {"title": "x"}})
    with pytest.raises(ValidationError):
        noted_registry().parse(envelope)


def test_the_newest_version_is_the_current_model() -> None:
    registry = noted_registry()
    assert registry.current()["test.noted"] is Noted
    assert registry.model("test.noted", 1) is NotedV1


def test_an_older_version_without_an_upcaster_is_refused_at_registration() -> None:
    registry = Registry()
    registry.register(NotedV1, Noted)
    with pytest.raises(ValueError, match="no upcaster"):
        registry.check()


def test_an_upcaster_returning_the_wrong_version_is_refused() -> None:
    registry = Registry()
    registry.register(NotedV1, Noted)
    registry.add_upcaster("test.noted", 1, lambda old: old)
    with pytest.raises(TypeError, match=r"returned 'test\.noted' version 1"):
        registry.parse(_envelope(NotedV1(subject="x")))


def test_klaxons_registry_holds_every_current_model() -> None:
    REGISTRY.check()
    assert REGISTRY.current() == EVENT_TYPES
    assert "test.noted" not in EVENT_TYPES
