"""The routing table names only services and event types Klaxon has."""

from contracts.registry import EVENT_TYPES
from contracts.topology import CONSUMES, SERVICES


def test_every_routed_type_is_a_registered_event() -> None:
    for service, types in CONSUMES.items():
        assert types <= set(EVENT_TYPES), (service, sorted(types - set(EVENT_TYPES)))


def test_every_service_has_a_row() -> None:
    assert set(CONSUMES) == set(SERVICES)
