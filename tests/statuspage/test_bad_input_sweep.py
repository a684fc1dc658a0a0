"""Every admin route and the public pages, fed bad input: never a 500, never raw error text."""

import re
import uuid
from typing import Any

import httpx

from tests.statuspage.helpers import StatusPages

HUGE = {"name": "x" * 2_000_000}

WRONG_BODIES: list[Any] = [
    [],
    "text",
    42,
    None,
    {"name": 5, "body": ["a"], "status": {"x": 1}, "slug": 7, "title": None},
    {"scheduled_for": "yesterday", "scheduled_until": 3, "component_ids": ["nope"]},
    {"position": -1, "group_id": "nope", "monitor_ids": "x", "products": "canvas-hosting"},
    {"unexpected": True},
    {"name": "\x00", "body": "\x00"},
    {"expected_resolution_at": "2026-01-01T00:00:00", "body": "x", "name": "x"},
    {"position": 10**30, "name": "x"},
]


def _routes(statuspage: StatusPages) -> list[tuple[str, str]]:
    paths: dict[str, Any] = statuspage.app.openapi()["paths"]
    return [
        (method.upper(), path)
        for path, item in paths.items()
        if path.startswith("/v1/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _fill(path: str, page: str, ident: str) -> str:
    path = path.replace("{slug}", page)
    return re.sub(r"\{[a-z_]+\}", ident, path)


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", what
        text = response.text
        assert "Traceback" not in text, what
        assert "sqlalchemy" not in text.lower(), what
        assert "asyncpg" not in text.lower(), what


async def test_no_admin_route_answers_bad_input_with_a_500(statuspage: StatusPages) -> None:
    await statuspage.page()
    component = await statuspage.component()
    routes = _routes(statuspage)
    assert len(routes) >= 17
    headers = statuspage.auth()
    slugs = ["canvas", "nope", "A" * 300, "%00", "é", "..", "-x"]
    idents = [component["id"], str(uuid.uuid4()), "not-a-uuid", "1" * 300, "%25"]
    for method, template in routes:
        for page in slugs:
            for ident in idents:
                path = _fill(template, page, ident)
                response = await statuspage.client.request(method, path, headers=headers)
                _check(response, f"{method} {path} (no body)")
        path = _fill(template, "canvas", component["id"])
        if method in {"POST", "PUT", "PATCH"}:
            for body in WRONG_BODIES:
                response = await statuspage.client.request(method, path, json=body, headers=headers)
                _check(response, f"{method} {path} {str(body)[:60]}")
                if body is not None and not isinstance(body, dict):
                    assert response.status_code in {404, 409, 422}, (method, path, body)
            response = await statuspage.client.request(method, path, json=HUGE, headers=headers)
            _check(response, f"{method} {path} huge")
            assert response.status_code in {404, 413}, (method, path, response.status_code)
            response = await statuspage.client.request(
                method, path, content=b"<x/>", headers={**headers, "content-type": "text/xml"}
            )
            _check(response, f"{method} {path} xml")
            response = await statuspage.client.request(
                method,
                path,
                content=b"{not json",
                headers={**headers, "content-type": "application/json"},
            )
            _check(response, f"{method} {path} broken json")


async def test_no_public_path_answers_bad_input_with_a_500(statuspage: StatusPages) -> None:
    await statuspage.page()
    for path in [
        "/status/",
        "/status//",
        "/status/canvas%0d%0aSet-Cookie:%20x=1",
        "/status/" + "a" * 5000,
        "/status/canvas/../../v1/pages",
        "/status/canvas/api/v2/%00.json",
        "/status/%E2%98%83",
        "/status/%E2%98%83/",
        "/status/canvas/api/v2/summary.json?x=" + "y" * 5000,
    ]:
        response = await statuspage.client.get(path)
        _check(response, path)
        for name, value in response.headers.items():
            assert not {"\r", "\n"} & set(value), (path, name)


async def test_control_characters_are_refused_by_field(statuspage: StatusPages) -> None:
    await statuspage.page()
    for body, field in (
        ({"name": "Web\x00app", "body": "x"}, "name"),
        ({"name": "Web\napp", "body": "x"}, "name"),
        ({"name": "Outage", "body": "bad\x01byte"}, "body"),
    ):
        response = await statuspage.client.post(
            "/v1/pages/canvas/incidents", json=body, headers=statuspage.auth()
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    ok = {"name": "Outage", "body": "line one\nline two\ttabbed"}
    await statuspage.post("/v1/pages/canvas/incidents", ok)
    feed = await statuspage.public("canvas/history.atom")
    assert feed.status_code == 200
    assert b"line two" in feed.content
