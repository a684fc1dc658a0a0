"""Klaxon's event contracts: the envelope, every payload, and the broker names.

Pure pydantic models and constants; this package performs no I/O and imports
nothing else of Klaxon's.
"""

from contracts.envelope import Envelope, EventPayload, UnknownEventType, parse_payload
from contracts.registry import EVENT_TYPES, payload_model

__all__ = [
    "EVENT_TYPES",
    "Envelope",
    "EventPayload",
    "UnknownEventType",
    "parse_payload",
    "payload_model",
]
