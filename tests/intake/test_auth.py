"""Bearer API keys with scopes on everything but health; products and keys managed by admin."""

import asyncio
import json
import os
import sys

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.intake.helpers import Intake, ticket_body


async def test_every_v1_endpoint_needs_a_key(intake: Intake) -> None:
    for method, path in (
        ("POST", "/v1/tickets"),
        ("GET", "/v1/tickets"),
        ("GET", "/v1/tickets/KLX-1000"),
        ("POST", "/v1/tickets/KLX-1000/attachments"),
        ("GET", "/v1/products"),
        ("POST", "/v1/products"),
        ("GET", "/v1/api-keys"),
        ("GET", "/v1/reports/critical-usage"),
    ):
        response = await intake.client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = await intake.client.request(
            method, path, headers={"Authorization": "Bearer klx_not-a-real-key"}
        )
        assert wrong.status_code == 401
    assert (await intake.client.get("/healthz")).status_code == 200


async def test_wrong_scope_is_403(intake: Intake) -> None:
    reader = intake.auth(intake.reader_key)
    portal = intake.auth(intake.portal_key)
    assert (
        await intake.client.post("/v1/tickets", json=ticket_body(), headers=reader)
    ).status_code == 403
    assert (await intake.client.get("/v1/tickets", headers=portal)).status_code == 403
    forbidden = await intake.client.post(
        "/v1/products", json={"slug": "x", "name": "X"}, headers=reader
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["required_scope"] == "admin"
    assert (await intake.client.get("/v1/api-keys", headers=portal)).status_code == 403
    catalogue = await intake.client.get("/v1/products", headers=portal)
    assert catalogue.status_code == 200, "the portal lists the products it files tickets for"
    admin = intake.auth(intake.admin_key)
    assert (await intake.client.get("/v1/tickets", headers=admin)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/products"), ("PATCH", "/v1/products/canvas-hosting"), ("POST", "/v1/api-keys")],
)
async def test_a_malformed_body_is_judged_after_the_key(
    intake: Intake, method: str, path: str
) -> None:
    async def send(key: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json", **(intake.auth(key) if key else {})}
        return await intake.client.request(method, path, content=b"{bad", headers=headers)

    assert (await send(None)).status_code == 401
    assert (await send(intake.reader_key)).status_code == 403
    refused = await send(intake.admin_key)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["body"]
    assert "not valid JSON" in refused.json()["errors"][0]["reason"]


async def test_admin_creates_lists_and_revokes_api_keys(intake: Intake) -> None:
    admin = intake.auth(intake.admin_key)
    created = await intake.client.post(
        "/v1/api-keys", json={"name": "portal-2", "scopes": ["tickets:write"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith("klx_")
    assert key["scopes"] == ["tickets:write"]

    listed = (await intake.client.get("/v1/api-keys", headers=admin)).json()
    assert key["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed)

    filed = await intake.client.post(
        "/v1/tickets", json=ticket_body(), headers=intake.auth(key["key"])
    )
    assert filed.status_code == 201
    revoked = await intake.client.delete(f"/v1/api-keys/{key['id']}", headers=admin)
    assert revoked.status_code == 204
    again = await intake.client.post(
        "/v1/tickets", json=ticket_body(), headers=intake.auth(key["key"])
    )
    assert again.status_code == 401
    twice = await intake.client.delete(f"/v1/api-keys/{key['id']}", headers=admin)
    assert twice.status_code == 404

    bad_scope = await intake.client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=admin
    )
    assert bad_scope.status_code == 422
    assert bad_scope.json()["errors"][0]["field"].startswith("scopes")


async def test_products_catalogue_is_seeded_and_managed_by_admin(intake: Intake) -> None:
    admin = intake.auth(intake.admin_key)
    reader = intake.auth(intake.reader_key)
    seeded = (await intake.client.get("/v1/products", headers=reader)).json()
    assert [p["slug"] for p in seeded] == ["atomic-apps", "canvas-hosting", "custom-development"]
    assert [p["name"] for p in seeded] == ["Atomic Apps", "Canvas Hosting", "Custom Development"]

    created = await intake.client.post(
        "/v1/products", json={"slug": "mobile-sdk", "name": "Mobile SDK"}, headers=admin
    )
    assert created.status_code == 201
    duplicate = await intake.client.post(
        "/v1/products", json={"slug": "mobile-sdk", "name": "Again"}, headers=admin
    )
    assert duplicate.status_code == 409
    bad = await intake.client.post(
        "/v1/products", json={"slug": "Bad Slug", "name": "X"}, headers=admin
    )
    assert bad.status_code == 422

    renamed = await intake.client.patch(
        "/v1/products/mobile-sdk", json={"name": "Mobile SDK 2"}, headers=admin
    )
    assert renamed.json() == {"slug": "mobile-sdk", "name": "Mobile SDK 2", "active": True}
    filed = await intake.file(product="mobile-sdk")
    assert filed["product"]["name"] == "Mobile SDK 2"

    assert (await intake.client.delete("/v1/products/mobile-sdk", headers=admin)).status_code == 204
    active = (await intake.client.get("/v1/products", headers=reader)).json()
    assert "mobile-sdk" not in [p["slug"] for p in active]
    everything = (
        await intake.client.get("/v1/products?include_inactive=true", headers=reader)
    ).json()
    assert "mobile-sdk" in [p["slug"] for p in everything]
    assert (await intake.ticket(filed["id"]))["product"]["slug"] == "mobile-sdk"
    missing = await intake.client.patch("/v1/products/nope", json={"name": "x"}, headers=admin)
    assert missing.status_code == 404


async def test_cli_creates_the_first_admin_key(intake: Intake) -> None:
    url = make_url(intake.settings.database_url).render_as_string(hide_password=False)
    environment = {
        **os.environ,
        "KLAXON_DATABASE_URL": url,
        "KLAXON_DB_SCHEMA": "intake",
        "KLAXON_LOG_JSON": "false",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "intake", "create-api-key", "--name", "first", "--scope", "admin"),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    printed = json.loads(stdout.decode().strip().splitlines()[-1])
    assert printed["scopes"] == ["admin"]
    listed = await intake.client.get("/v1/api-keys", headers=intake.auth(printed["key"]))
    assert listed.status_code == 200
    assert "first" in [k["name"] for k in listed.json()]

    typo = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "intake", "create-api-key", "--scope", "tickets:wirte"),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, error = await asyncio.wait_for(typo.communicate(), timeout=60)
    assert typo.returncode == 2
    assert "invalid choice: 'tickets:wirte'" in error.decode()
    after = await intake.client.get("/v1/api-keys", headers=intake.auth(printed["key"]))
    assert len(after.json()) == len(listed.json()), "nothing was created"
