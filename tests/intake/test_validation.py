"""Bad input gets problem+json naming the field and the reason, and writes nothing."""

import base64
import json
import uuid
from typing import Any

import pytest

from tests.intake.helpers import Intake, ticket_body

TABLES = ("ticket", "ticket_event", "attachment", "idempotency_key", "outbox_event")


async def _refused(intake: Intake, body: Any, status: int = 422, **kwargs: Any) -> dict[str, Any]:
    if isinstance(body, (bytes, str)):
        kwargs.setdefault("headers", {"Content-Type": "application/json"})
        kwargs["content"] = body
    else:
        kwargs["json"] = body
    headers = {**intake.auth(), "Idempotency-Key": "k1", **kwargs.pop("headers", {})}
    response = await intake.client.post("/v1/tickets", headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    for table in TABLES:
        assert await intake.count(table) == 0, table
    problem: dict[str, Any] = response.json()
    return problem


def _fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem["errors"]]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"reporter": {"name": "Ada", "email": "not-an-email"}}, "reporter.email"),
        ({"reporter": {"name": "", "email": "ada@acme.example"}}, "reporter.name"),
        ({"urls": ["ftp://acme.example/file"]}, "urls.0"),
        ({"urls": ["javascript:alert(1)"]}, "urls.0"),
        ({"urls": ["https://"]}, "urls.0"),
        ({"urls": ["https://ok.example/", "http://a b.example/"]}, "urls.1"),
        ({"subject": ""}, "subject"),
        ({"subject": "   "}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"description": "x" * 20_001}, "description"),
        ({"error_text": "nul \x00 byte"}, "error_text"),
        ({"organization": "o" * 201}, "organization"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"severity": 1}, "severity"),
        ({"subject": 42}, "subject"),
        ({"urls": "https://acme.example/"}, "urls"),
        ({"product": "Canvas Hosting!"}, "product"),
        ({"unexpected": "field"}, "unexpected"),
    ],
)
async def test_invalid_field_is_named_with_its_reason(
    intake: Intake, overrides: dict[str, Any], field: str
) -> None:
    problem = await _refused(intake, ticket_body(**overrides))
    assert field in _fields(problem)
    assert all(e["reason"] for e in problem["errors"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"subject": "Down\r\nBcc: victim@example.com"}, "subject"),
        ({"subject": "Down\nnext line"}, "subject"),
        ({"reporter": {"name": "Ada\rX-Injected: 1", "email": "a@b.example"}}, "reporter.name"),
        ({"organization": "Acme\x1b[31m"}, "organization"),
        ({"subject": "line\u2028separator"}, "subject"),
    ],
)
async def test_header_injection_characters_are_refused(
    intake: Intake, overrides: dict[str, Any], field: str
) -> None:
    problem = await _refused(intake, ticket_body(**overrides))
    assert _fields(problem) == [field]
    assert "control characters" in problem["errors"][0]["reason"]


async def test_unknown_or_retired_product_is_refused(intake: Intake) -> None:
    problem = await _refused(intake, ticket_body(product="no-such-product"))
    assert _fields(problem) == ["product"]
    assert "unknown product" in problem["errors"][0]["reason"]
    retired = await intake.client.delete(
        "/v1/products/atomic-apps", headers=intake.auth(intake.admin_key)
    )
    assert retired.status_code == 204
    await _refused(intake, ticket_body(product="atomic-apps"))


async def test_missing_fields_are_each_named(intake: Intake) -> None:
    problem = await _refused(intake, {"severity": "critical"})
    assert set(_fields(problem)) >= {"organization", "reporter", "product", "subject"}


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"[]", b"null", b'"string"', b"\xff\xfe", b'{"subject": "a"' * 3],
)
async def test_malformed_json_is_422(intake: Intake, raw: bytes) -> None:
    await _refused(intake, raw)


async def test_oversized_json_body_is_413(intake: Intake) -> None:
    huge = ticket_body(description="x" * (2 * 1024 * 1024))
    await _refused(intake, huge, status=413)


async def test_wrong_content_type_is_415(intake: Intake) -> None:
    await _refused(intake, b"subject=hi", status=415, headers={"Content-Type": "text/plain"})
    await _refused(
        intake,
        b"<ticket/>",
        status=415,
        headers={"Content-Type": "application/xml"},
    )


async def test_bad_idempotency_key_header_is_422(intake: Intake) -> None:
    problem = await _refused(intake, ticket_body(), headers={"Idempotency-Key": "x" * 300})
    assert "Idempotency-Key" in _fields(problem)[0]


def _cursor(*items: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(items).encode()).decode().rstrip("=")


_FAR_FUTURE_CURSOR = _cursor("9999-12-31T23:59:59-14:00", str(uuid.UUID(int=1)))


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/tickets/KLX-1000/attachments/not-a-uuid", "attachment_id"),
        ("GET", f"/v1/tickets/%00/attachments/{uuid.UUID(int=1)}", "ref"),
        ("GET", "/v1/tickets/%00", "ref"),
        ("GET", "/v1/tickets?organization=%00", "organization"),
        ("GET", "/v1/tickets?organization=a%0Ab", "organization"),
        ("GET", "/v1/tickets?product=a%00", "product"),
        ("GET", "/v1/tickets?created_from=0001-01-01T00:00:00%2B14:00", "created_from"),
        ("GET", "/v1/tickets?created_to=9999-12-31T23:59:59-14:00", "created_to"),
        ("GET", f"/v1/tickets?cursor={_cursor('2024-01-01T00:00:00+00:00', 5)}", "cursor"),
        ("GET", f"/v1/tickets?cursor={_FAR_FUTURE_CURSOR}", "cursor"),
        ("GET", "/v1/reports/critical-usage?created_to=0001-01-01T00:00:00%2B14:00", "created_to"),
        ("GET", "/v1/products/a%00", "slug"),
        ("PATCH", "/v1/products/a%00", "slug"),
        ("DELETE", "/v1/products/a%00", "slug"),
        ("DELETE", "/v1/api-keys/nope", "key_id"),
    ],
)
async def test_bad_path_and_query_values_are_named(
    intake: Intake, method: str, path: str, field: str
) -> None:
    body = {"name": "Renamed"} if method == "PATCH" else None
    response = await intake.client.request(
        method, path, headers=intake.auth(intake.admin_key), json=body
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert any(e["field"].endswith(field) for e in response.json()["errors"]), response.text
