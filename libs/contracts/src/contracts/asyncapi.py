"""An AsyncAPI 3.0 document of every event on Klaxon's bus, built from the contracts.

``python -m contracts.asyncapi [--output docs/asyncapi.yaml]`` prints (or writes)
the document. The output is deterministic: keys are sorted and nothing depends
on the clock, so the committed ``docs/asyncapi.yaml`` can be compared with a
fresh generation in CI.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from contracts.envelope import Envelope, EventPayload
from contracts.registry import EVENT_TYPES
from contracts.topology import (
    CONSUMES,
    EVENTS_EXCHANGE,
    SERVICES,
    UNROUTED_EXCHANGE,
    UNROUTED_QUEUE,
    dead_letter_name,
    service_queue,
)

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
SCHEMA_REF = "#/components/schemas/{model}"

SENDERS: dict[str, str] = {
    "contracts.intake": "intake",
    "contracts.products": "intake",
    "contracts.monitor": "monitor",
    "contracts.notifier": "notifier",
    "contracts.statuspage": "statuspage-sync",
}
"""The contracts module a payload lives in -> the service that publishes it."""

DEPLOYED_AS: dict[str, str] = {"statuspage": "statuspage-sync"}
"""A service's name in the routing table (and its queue) -> its name as deployed, where
they differ."""

DESCRIPTION = f"""\
Events Klaxon's four services exchange over RabbitMQ.

Every event is published to the durable topic exchange `{EVENTS_EXCHANGE}` with
the event type as routing key (e.g. `ticket.filed`), as a persistent JSON
message whose AMQP `message_id` is the envelope `id`, `correlation_id` the
envelope `correlation_id` and `type` the routing key. Publishing goes through a
transactional outbox with publisher confirms, so an event is delivered at least
once; consumers deduplicate by envelope `id` in their inbox.

Each service consumes from one quorum queue `{service_queue("<service>")}` (one of
{", ".join(f"`{service_queue(s)}`" for s in SERVICES)}) bound to the routing keys
it handles. A message it cannot parse, or that keeps failing past the consumer's
delivery limit, is dead-lettered to the fanout exchange and quorum queue
`{dead_letter_name("<service>")}`. Events no queue is bound to go to the alternate
exchange `{UNROUTED_EXCHANGE}` and are kept in the queue `{UNROUTED_QUEUE}`.

Payloads follow the tolerant-reader rule: consumers ignore unknown fields, so
a producer may add optional fields without bumping `version`; removing or
changing a field bumps it. A consumer keeps the older versions' schemas and
upcasts an older payload to the current version; a version it does not know is
dead-lettered. The envelope itself is strict: unknown fields and timestamps
without a UTC offset are refused.

Every service's queue and bindings are declared by `migrate` from the routing
table (each channel below names the queues it is consumed from), so an event
published before its consumer first ran waits in that consumer's queue.
"""


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "")


def _summary(obj: object) -> str:
    return _doc(obj).split("\n", 1)[0]


def _sender(model: type[EventPayload]) -> str:
    try:
        return SENDERS[model.__module__]
    except KeyError:
        raise ValueError(
            f"{model.__name__} lives in {model.__module__}, which no service owns"
        ) from None


def _version() -> str:
    try:
        return metadata.version("klaxon-contracts")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _add_schema(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    if name in schemas and schemas[name] != schema:
        raise ValueError(f"two different JSON schemas are both named {name!r}")
    schemas[name] = schema


def _collect_schema(schemas: dict[str, Any], model: type[Any]) -> None:
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    for name, definition in schema.pop("$defs", {}).items():
        _add_schema(schemas, name, definition)
    _add_schema(schemas, model.__name__, schema)


def _envelope_schema(name: str, event_type: str, version: int) -> dict[str, Any]:
    return {
        "title": f"{name}Envelope",
        "description": f"The envelope of a `{event_type}` event (version {version}).",
        "allOf": [
            {"$ref": SCHEMA_REF.format(model=Envelope.__name__)},
            {
                "type": "object",
                "properties": {
                    "type": {"const": event_type},
                    "version": {"const": version},
                    "payload": {"$ref": SCHEMA_REF.format(model=name)},
                },
            },
        ],
    }


def _camel(event_type: str) -> str:
    return "".join(word.capitalize() for word in event_type.replace(".", "_").split("_"))


def _operation_id(event_type: str) -> str:
    return "send" + _camel(event_type)


def _receivers(event_type: str) -> list[str]:
    """The services whose queues the routing table binds to `event_type`."""
    return sorted(service for service, types in CONSUMES.items() if event_type in types)


def _check_routing_table() -> None:
    unknown = sorted(set().union(*CONSUMES.values()) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"the routing table names unregistered event types: {unknown}")
    unnamed = sorted(set(CONSUMES) - set(SERVICES))
    if unnamed:
        raise ValueError(f"the routing table names services not in SERVICES: {unnamed}")


def _receive_operation(service: str, event_type: str, name: str, summary: str) -> dict[str, Any]:
    deployed = DEPLOYED_AS.get(service, service)
    return {
        "action": "receive",
        "title": f"{deployed} receives {event_type}",
        "summary": summary,
        "description": (
            f"Bound to the quorum queue `{service_queue(service)}` by "
            "`contracts.topology.CONSUMES`; `migrate` declares the binding."
        ),
        "channel": {"$ref": f"#/channels/{event_type}"},
        "messages": [{"$ref": f"#/channels/{event_type}/messages/{name}"}],
        "tags": [{"name": deployed}],
        "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def _consumed_by(event_type: str) -> str:
    receivers = _receivers(event_type)
    if not receivers:
        return f"no service consumes it (it is kept in `{UNROUTED_QUEUE}`)"
    queues = ", ".join(f"`{service_queue(service)}`" for service in receivers)
    return f"consumed from {queues}"


def build_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document for every model in `EVENT_TYPES`; who receives what comes
    from the routing table (`contracts.topology.CONSUMES`)."""
    _check_routing_table()
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    _collect_schema(schemas, Envelope)

    for event_type, model in sorted(EVENT_TYPES.items()):
        name = model.__name__
        sender = _sender(model)
        _collect_schema(schemas, model)
        _add_schema(
            schemas, f"{name}Envelope", _envelope_schema(name, event_type, model.event_version)
        )
        messages[name] = {
            "name": event_type,
            "title": name,
            "summary": _summary(model),
            "description": f"{_doc(model)}\n\nPublished by the {sender} service.",
            "contentType": "application/json",
            "payload": {"$ref": SCHEMA_REF.format(model=f"{name}Envelope")},
            "correlationId": {
                "description": "Shared by every event caused by the same request or alert.",
                "location": "$message.payload#/correlation_id",
            },
            "tags": [{"name": sender}],
            "bindings": {
                "amqp": {
                    "messageType": event_type,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        channels[event_type] = {
            "address": event_type,
            "title": event_type,
            "description": (
                f"Routing key `{event_type}` on the `{EVENTS_EXCHANGE}` topic exchange; "
                f"published by {sender}; {_consumed_by(event_type)}."
            ),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": EVENTS_EXCHANGE,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        operations[_operation_id(event_type)] = {
            "action": "send",
            "title": f"{sender} publishes {event_type}",
            "summary": _summary(model),
            "channel": {"$ref": f"#/channels/{event_type}"},
            "messages": [{"$ref": f"#/channels/{event_type}/messages/{name}"}],
            "tags": [{"name": sender}],
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": False,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        for service in _receivers(event_type):
            operations[f"{service}Receives{_camel(event_type)}"] = _receive_operation(
                service, event_type, name, _summary(model)
            )

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:klaxon:events",
        "info": {
            "title": "Klaxon events",
            "version": _version(),
            "description": DESCRIPTION,
            "tags": [
                {"name": service, "description": f"Sent or received by the {service} service."}
                for service in sorted(
                    {*SENDERS.values(), *(DEPLOYED_AS.get(s, s) for s in CONSUMES)}
                )
            ],
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ of a development machine (`make run`).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render(document: dict[str, Any] | None = None) -> str:
    """The document as YAML with sorted keys."""
    return yaml.safe_dump(
        document if document is not None else build_document(),
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Print the document, or write it to ``--output``."""
    parser = argparse.ArgumentParser(
        prog="python -m contracts.asyncapi", description="Generate Klaxon's AsyncAPI document."
    )
    parser.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    text = render()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
