"""The committed AsyncAPI document is the one the contracts generate."""

from pathlib import Path
from typing import Any

import yaml

from contracts.asyncapi import DEPLOYED_AS, build_document, render
from contracts.registry import EVENT_TYPES
from contracts.topology import CONSUMES, EVENTS_EXCHANGE

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
REGENERATE = "uv run python -m contracts.asyncapi --output docs/asyncapi.yaml  (or: make asyncapi)"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_committed_document_matches_the_contracts() -> None:
    assert COMMITTED.exists(), f"docs/asyncapi.yaml is missing; generate it with: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        f"docs/asyncapi.yaml is out of date with libs/contracts; regenerate it with: {REGENERATE}"
    )


def test_generation_is_deterministic() -> None:
    assert render() == render()


def test_document_is_asyncapi_3_with_a_channel_per_event_type() -> None:
    document = yaml.safe_load(render())

    assert document["asyncapi"] == "3.0.0"
    assert set(document["channels"]) == set(EVENT_TYPES)
    for event_type, model in EVENT_TYPES.items():
        channel = document["channels"][event_type]
        assert channel["address"] == event_type
        amqp = channel["bindings"]["amqp"]
        assert amqp["is"] == "routingKey"
        assert amqp["exchange"] == {
            "name": EVENTS_EXCHANGE,
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }
        message = document["components"]["messages"][model.__name__]
        assert message["name"] == event_type
        envelope = _resolve(document, message["payload"]["$ref"])
        assert envelope["allOf"][0] == {"$ref": "#/components/schemas/Envelope"}
        payload_ref = envelope["allOf"][1]["properties"]["payload"]["$ref"]
        assert _resolve(document, payload_ref)["title"] == model.__name__


def test_each_event_names_the_service_that_sends_it() -> None:
    document = build_document()
    senders = {
        operation["channel"]["$ref"].removeprefix("#/channels/"): operation["tags"][0]["name"]
        for operation in document["operations"].values()
        if operation["action"] == "send"
    }

    assert senders["ticket.filed"] == "intake"
    assert senders["monitor.down"] == "monitor"
    assert senders["page.notified"] == "notifier"
    assert senders["statuspage.update_overdue"] == "statuspage-sync"
    assert set(senders) == set(EVENT_TYPES)


def test_every_reference_resolves() -> None:
    document = build_document()

    for ref in _refs(document):
        _resolve(document, ref)


def test_description_names_queues_and_dead_letters() -> None:
    description = build_document()["info"]["description"]

    assert "klaxon.notifier" in description
    assert "klaxon.<service>.dead" in description
    assert EVENTS_EXCHANGE in description


def test_each_event_names_the_services_that_receive_it_from_the_routing_table() -> None:
    document = build_document()
    received: dict[str, set[str]] = {}
    for operation in document["operations"].values():
        if operation["action"] == "receive":
            channel = operation["channel"]["$ref"].removeprefix("#/channels/")
            received.setdefault(channel, set()).add(operation["tags"][0]["name"])

    expected: dict[str, set[str]] = {}
    for service, types in CONSUMES.items():
        for event_type in types:
            expected.setdefault(event_type, set()).add(DEPLOYED_AS.get(service, service))
    assert received == expected
    assert "notifier" in received["ticket.filed"]
    assert "statuspage-sync" in received["ticket.filed"]
    assert "klaxon.notifier" in document["channels"]["ticket.filed"]["description"]
