"""Filing, reading and listing tickets; a CRITICAL ticket's event reaches the broker."""

import asyncio
import uuid

from contracts import parse_payload
from contracts.common import HealthState, ProductRef
from contracts.intake import TicketFiled
from contracts.monitor import MonitorWentDown
from tests.harness import eventually, wait_connected
from tests.intake.helpers import (
    Intake,
    inject,
    listening,
    new_id,
    next_event,
    now,
    ticket_body,
)


async def test_critical_ticket_is_filed_with_number_status_and_next_steps(intake: Intake) -> None:
    response = await intake.client.post("/v1/tickets", json=ticket_body(), headers=intake.auth())
    assert response.status_code == 201
    body = response.json()
    assert body["number"] == "KLX-1000"
    assert uuid.UUID(body["id"])
    assert body["status"] == "new"
    assert body["product"] == {"slug": "canvas-hosting", "name": "Canvas Hosting"}
    assert body["monitoring_state"] == "unknown"
    assert "paging the on-call engineer" in body["next_steps"]
    assert "30 minutes" in body["next_steps"]
    assert [e["kind"] for e in body["timeline"]] == ["filed"]
    assert response.headers["location"] == f"/v1/tickets/{body['id']}"
    second = await intake.file(severity="low")
    assert second["number"] == "KLX-1001"
    assert "paging" not in second["next_steps"]


async def test_ticket_is_found_by_id_and_by_number(intake: Intake) -> None:
    filed = await intake.file()
    by_id = await intake.ticket(filed["id"])
    by_number = await intake.ticket(filed["number"].lower())
    assert by_id == by_number
    assert by_id["urls"] == ["https://acme.canvas.example/"]
    assert by_id["error_text"] == "502 Bad Gateway"
    assert by_id["reporter"] == {"name": "Ada Lovelace", "email": "ada@acme.example"}


async def test_unknown_or_malformed_ticket_reference_is_a_problem_not_a_crash(
    intake: Intake,
) -> None:
    headers = intake.auth(intake.reader_key)
    missing = await intake.client.get(f"/v1/tickets/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await intake.client.get("/v1/tickets/KLX-99999", headers=headers)).status_code == 404
    bad = await intake.client.get("/v1/tickets/not-a-ticket", headers=headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "ref"


async def test_critical_ticket_event_is_published_through_the_real_broker(intake: Intake) -> None:
    async with listening(intake.env, TicketFiled.event_type) as events:
        await wait_connected(intake.runtime)
        filed = await intake.file()
        envelope = await next_event(events, TicketFiled.event_type)
    payload = parse_payload(envelope)
    assert isinstance(payload, TicketFiled)
    assert str(payload.ticket_id) == filed["id"]
    assert payload.number == filed["number"]
    assert payload.severity == "critical"
    assert payload.product.slug == "canvas-hosting"
    assert payload.monitoring_state == HealthState.UNKNOWN
    assert payload.reporter.email == "ada@acme.example"
    assert envelope.producer == "intake"
    await eventually(lambda: _outbox_empty(intake))


async def _outbox_empty(intake: Intake) -> bool:
    return await intake.count("outbox_event") == 0


async def test_ticket_is_stamped_with_what_monitoring_saw_when_filed(intake: Intake) -> None:
    await wait_connected(intake.runtime)
    await inject(
        intake.env,
        MonitorWentDown(
            monitor_id=new_id(),
            monitor_name="canvas home",
            product=ProductRef(slug="canvas-hosting", name="Canvas Hosting"),
            error="HTTP 502",
            down_since=now(),
        ),
        producer="monitor",
    )
    await eventually(lambda: _count_signals(intake))
    async with listening(intake.env, TicketFiled.event_type) as events:
        filed = await intake.file()
        payload = parse_payload(await next_event(events, TicketFiled.event_type))
    assert filed["monitoring_state"] == "down"
    assert isinstance(payload, TicketFiled)
    assert payload.monitoring_state == HealthState.DOWN
    other = await intake.file(product="atomic-apps")
    assert other["monitoring_state"] == "unknown"


async def _count_signals(intake: Intake) -> bool:
    return await intake.count("product_signal") == 1


async def test_list_filters_and_paginates_with_a_cursor(intake: Intake) -> None:
    for i in range(5):
        await intake.file(severity="critical" if i % 2 == 0 else "low", organization=f"Org {i % 2}")
    await intake.file(product="atomic-apps", severity="high", organization="Other")
    headers = intake.auth(intake.reader_key)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await intake.client.get("/v1/tickets", params=params, headers=headers)).json()
        seen.extend(item["number"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"KLX-{n}" for n in range(1005, 999, -1)]

    async def numbers(**params: str) -> list[str]:
        response = await intake.client.get("/v1/tickets", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [item["number"] for item in response.json()["items"]]

    assert await numbers(severity="critical") == ["KLX-1004", "KLX-1002", "KLX-1000"]
    assert await numbers(product="atomic-apps") == ["KLX-1005"]
    assert await numbers(organization="Org 1") == ["KLX-1003", "KLX-1001"]
    assert await numbers(status="new", severity="high") == ["KLX-1005"]
    assert await numbers(status="resolved") == []
    future = "2999-01-01T00:00:00Z"
    assert await numbers(created_from=future) == []
    assert len(await numbers(created_to=future)) == 6


async def test_bad_list_parameters_are_422(intake: Intake) -> None:
    headers = intake.auth(intake.reader_key)
    for params in (
        {"cursor": "garbage!"},
        {"cursor": "WyJ4IiwgInkiXQ"},
        {"status": "exploded"},
        {"limit": "0"},
        {"limit": "1000"},
        {"created_from": "yesterday"},
    ):
        response = await intake.client.get("/v1/tickets", params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_openapi_documents_the_ticket_api(intake: Intake) -> None:
    schema = (await intake.client.get("/openapi.json")).json()
    post = schema["paths"]["/v1/tickets"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "TicketCreate" in schema["components"]["schemas"]
    assert "Reporter" in schema["components"]["schemas"]
    for path, method, model in (
        ("/v1/products", "post", "ProductCreate"),
        ("/v1/products/{slug}", "patch", "ProductUpdate"),
        ("/v1/api-keys", "post", "ApiKeyCreate"),
    ):
        body = schema["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"] == f"#/components/schemas/{model}"
        assert model in schema["components"]["schemas"]
    for path in (
        "/v1/tickets/{ref}",
        "/v1/tickets/{ref}/attachments",
        "/v1/tickets/{ref}/attachments/{attachment_id}",
        "/v1/products",
        "/v1/api-keys",
        "/v1/reports/critical-usage",
    ):
        assert path in schema["paths"]


async def test_many_tickets_filed_at_once_get_distinct_numbers(intake: Intake) -> None:
    filed = await asyncio.gather(*(intake.file() for _ in range(20)))
    assert len({t["number"] for t in filed}) == 20
