"""The OpenAPI document says exactly what the API does: a test walks every operation and
checks each answer, to valid and to invalid input, against the documented responses."""

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from tests.intake.helpers import Intake, ticket_body

PROBLEM = "application/problem+json"


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def check(operation: dict[str, Any], response: httpx.Response, what: str) -> None:
    """`response` is one the operation documents, with the documented media type."""
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{what}: {status} is not documented ({sorted(documented)})"
    content = documented[status].get("content", {})
    if not content:
        assert not response.content, f"{what}: {status} documents no body"
        return
    media = response.headers["content-type"].split(";")[0].strip()
    assert media in content or "*/*" in content, f"{what}: {media} not in {sorted(content)}"
    if media == PROBLEM:
        body = response.json()
        assert body["status"] == response.status_code
        assert body["title"]
        assert body["detail"]


async def test_the_document_is_self_consistent(intake: Intake) -> None:
    doc = (await intake.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for ref in set(_refs(doc)):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert "HTTPValidationError" not in schemas  # the API never sends FastAPI's 422 shape
    for method, path, operation in _operations(doc):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and path.startswith("/v1"):
                assert list(response["content"]) == [PROBLEM], (method, path, status)
        assert "431" in operation["responses"], (method, path)
    assert list(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    assert "409" in doc["paths"]["/v1/products"]["post"]["responses"]
    assert "409" in doc["paths"]["/v1/tickets"]["post"]["responses"]
    ref = doc["paths"]["/v1/tickets/{ref}"]["get"]["parameters"][0]["schema"]
    assert re.fullmatch(ref["pattern"], "KLX-1042")
    assert re.fullmatch(ref["pattern"], str(uuid.uuid4()))
    assert not re.fullmatch(ref["pattern"], "not-a-ticket")
    subject = schemas["TicketCreate"]["properties"]["subject"]["pattern"]
    assert re.fullmatch(subject, "Every page returns 502")
    assert not re.fullmatch(subject, "Injected\r\nBcc: x@example.com")  # as validated


async def test_every_operation_answers_as_documented(intake: Intake) -> None:
    doc = (await intake.client.get("/openapi.json")).json()
    admin = intake.auth(intake.admin_key)
    filed = await intake.file()
    files = {"attachments": ("log.txt", b"502 Bad Gateway\n", "text/plain")}
    attached = await intake.client.post(
        f"/v1/tickets/{filed['number']}/attachments", files=files, headers=admin
    )
    assert attached.status_code == 201, attached.text
    spare = (
        await intake.client.post(
            "/v1/api-keys", json={"name": "spare", "scopes": ["tickets:read"]}, headers=admin
        )
    ).json()
    await intake.client.post("/v1/products", json={"slug": "walk", "name": "Walk"}, headers=admin)
    values = {
        "ref": filed["number"],
        "attachment_id": attached.json()[0]["id"],
        "slug": "walk",
        "key_id": spare["id"],
    }
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/tickets"): {"json": ticket_body()},
        ("POST", "/v1/tickets/{ref}/attachments"): {"files": files},
        ("POST", "/v1/products"): {"json": {"slug": "walk-2", "name": "Walk 2"}},
        ("PATCH", "/v1/products/{slug}"): {"json": {"name": "Walked"}},
        ("POST", "/v1/api-keys"): {"json": {"name": "walk", "scopes": ["admin"]}},
    }
    invalid_values = {"ref": "not-a-ticket", "attachment_id": "x", "slug": "A B", "key_id": "x"}
    invalid_query = {"/v1/tickets": "created_to=0.5", "/v1/products": "include_inactive=1"}
    invalid_query["/v1/reports/critical-usage"] = "created_from=1700000000"

    operations = sorted(_operations(doc), key=lambda op: op[0] == "DELETE")  # deletes last
    walked = 0
    for method, path, operation in operations:
        url = path.format(**values)
        body = bodies.get((method, path), {})
        what = f"{method} {path}"
        # Without a key.
        check(operation, await intake.client.request(method, url, **body), f"{what} (no key)")
        # Valid input.
        valid = await intake.client.request(method, url, headers=admin, **body)
        assert valid.status_code < 400, f"{what}: {valid.status_code} {valid.text}"
        check(operation, valid, f"{what} (valid)")
        # Invalid path parameters, query parameters and bodies.
        names = re.findall(r"{(\w+)}", path)
        if names:
            bad_url = path.format(**{**values, **{n: invalid_values[n] for n in names}})
            bad = await intake.client.request(method, bad_url, headers=admin, **body)
            assert bad.status_code == 422, f"{what}: {bad.status_code} {bad.text}"
            check(operation, bad, f"{what} (invalid path)")
        if method == "GET" and path in invalid_query:
            bad = await intake.client.request(method, f"{url}?{invalid_query[path]}", headers=admin)
            assert bad.status_code == 422, f"{what}: {bad.status_code} {bad.text}"
            check(operation, bad, f"{what} (invalid query)")
        if "json" in body:
            bad = await intake.client.request(method, url, headers=admin, json={"nope": 1})
            assert bad.status_code == 422, f"{what}: {bad.status_code} {bad.text}"
            check(operation, bad, f"{what} (invalid body)")
            text = await intake.client.request(
                method, url, headers={**admin, "Content-Type": "text/plain"}, content=b"x"
            )
            assert text.status_code == 415, f"{what}: {text.status_code}"
            check(operation, text, f"{what} (text body)")
        walked += 1
    assert walked == len(list(_operations(doc)))


async def test_a_wrong_method_is_405_with_allow(intake: Intake) -> None:
    response = await intake.client.put("/v1/tickets", headers=intake.auth())
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


async def test_bare_numbers_are_not_date_times_nor_booleans(intake: Intake) -> None:
    reader = intake.auth(intake.reader_key)
    for query, field in (
        ("created_to=0.5", "created_to"),
        ("created_from=1700000000", "created_from"),
    ):
        response = await intake.client.get(f"/v1/tickets?{query}", headers=reader)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    for value in ("1", "0", "yes", "on"):
        response = await intake.client.get(f"/v1/products?include_inactive={value}", headers=reader)
        assert response.status_code == 422, (value, response.text)
    admin = intake.auth(intake.admin_key)
    for active in (0, 1, "false"):
        patched = await intake.client.patch(
            "/v1/products/canvas-hosting", json={"active": active}, headers=admin
        )
        assert patched.status_code == 422, (active, patched.text)
        assert patched.json()["errors"][0]["field"] == "active"
    ok = await intake.client.get(
        "/v1/tickets?created_from=2026-01-01T00:00:00Z&created_to=2026-01-02", headers=reader
    )
    assert ok.status_code == 200, ok.text
    assert (
        await intake.client.get("/v1/products?include_inactive=TRUE", headers=reader)
    ).status_code == 200
