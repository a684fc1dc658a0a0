"""A portal that retries after a timeout never files two tickets."""

import asyncio
import json
import time
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from intake import tickets
from intake.tickets import idempotency
from servicekit.db import asyncpg_dsn
from servicekit.outbox import notify_channel
from tests.harness import Throwaway, eventually
from tests.intake.helpers import Intake, running_intake, ticket_body

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_same_key_and_body_replays_the_first_response(intake: Intake) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "portal-req-1"}
    first = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await intake.count("ticket") == 1
    assert await intake.count("ticket_event") == 1


async def test_replay_ignores_json_formatting(intake: Intake) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "fmt", "Content-Type": "application/json"}
    compact = b'{"organization":"Acme","reporter":{"name":"A","email":"a@b.example"},"product":"atomic-apps","severity":"high","subject":"Down"}'
    spaced = b'{ "subject": "Down", "severity": "high", "product": "atomic-apps",\n "reporter": {"email": "a@b.example", "name": "A"}, "organization": "Acme" }'
    first = await intake.client.post("/v1/tickets", content=compact, headers=headers)
    second = await intake.client.post("/v1/tickets", content=spaced, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["id"] == first.json()["id"]


async def test_same_key_with_another_body_is_refused(intake: Intake) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "portal-req-2"}
    first = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert first.status_code == 201
    other = await intake.client.post(
        "/v1/tickets", json=ticket_body(subject="Something else"), headers=headers
    )
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert "different request body" in problem["detail"]
    assert await intake.count("ticket") == 1


async def test_concurrent_identical_retries_create_one_ticket(intake: Intake) -> None:
    for attempt in range(5):
        headers = {**intake.auth(), "Idempotency-Key": f"burst-{attempt}"}
        responses = await asyncio.gather(
            *(
                intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
                for _ in range(8)
            )
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["id"] for r in responses}) == 1
        assert sum("idempotent-replayed" in r.headers for r in responses) == 7
    assert await intake.count("ticket") == 5
    assert await intake.count("idempotency_key") == 5


async def test_keys_are_scoped_per_api_key(intake: Intake) -> None:
    admin_headers = {**intake.auth(intake.admin_key), "Idempotency-Key": "shared"}
    portal_headers = {**intake.auth(), "Idempotency-Key": "shared"}
    first = await intake.client.post("/v1/tickets", json=ticket_body(), headers=portal_headers)
    second = await intake.client.post("/v1/tickets", json=ticket_body(), headers=admin_headers)
    assert first.json()["id"] != second.json()["id"]
    assert await intake.count("ticket") == 2


async def test_a_refused_request_does_not_burn_its_key(intake: Intake) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "fix-and-retry"}
    bad = await intake.client.post("/v1/tickets", json=ticket_body(product="nope"), headers=headers)
    assert bad.status_code == 422
    fixed = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert fixed.status_code == 201


async def test_a_retry_replays_after_the_product_is_withdrawn(intake: Intake) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "before-withdrawal"}
    first = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert first.status_code == 201
    withdrawn = await intake.client.delete(
        f"/v1/products/{ticket_body()['product']}", headers=intake.auth(intake.admin_key)
    )
    assert withdrawn.status_code == 204
    again = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_a_retried_filing_with_attachments_stores_them_once(intake: Intake) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "with-files"}
    form = {"ticket": json.dumps(ticket_body())}
    files = [("attachments", ("screen.png", PNG, "image/png"))]
    responses = await asyncio.gather(
        *(
            intake.client.post("/v1/tickets", data=form, files=files, headers=headers)
            for _ in range(4)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert [len(r.json()["attachments"]) for r in responses] == [1] * 4
    assert (await intake.count("ticket"), await intake.count("attachment")) == (1, 1)


async def test_a_retried_attachment_upload_adds_the_files_once(intake: Intake) -> None:
    filed = await intake.file()
    path = f"/v1/tickets/{filed['number']}/attachments"
    headers = {**intake.auth(), "Idempotency-Key": "upload-1"}
    files = [("file", ("screen.png", PNG))]
    first = await intake.client.post(path, headers=headers, files=files)
    assert first.status_code == 201, first.text
    retries = await asyncio.gather(
        *(intake.client.post(path, headers=headers, files=files) for _ in range(3))
    )
    for again in retries:
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert await intake.count("attachment") == 1
    assert [e["kind"] for e in (await intake.ticket(filed["id"]))["timeline"]] == [
        "filed",
        "attachment_added",
    ]
    other = await intake.client.post(path, headers=headers, files=[("file", ("b.png", PNG))])
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    filing = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert filing.status_code == 422, "a key used for an upload cannot file a ticket"
    assert await intake.count("attachment") == 1


async def test_keys_are_forgotten_after_their_retention(env: Throwaway) -> None:
    async with running_intake(
        env, idempotency_retention_s=1.0, maintenance_interval_s=0.2
    ) as intake:
        headers = {**intake.auth(), "Idempotency-Key": "short-lived"}
        first = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
        again = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        deadline = time.monotonic() + 15
        while await intake.count("idempotency_key") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await intake.count("idempotency_key") == 0
        later = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
        assert later.status_code == 201
        assert "idempotent-replayed" not in later.headers
        assert later.json()["id"] != first.json()["id"]
        assert await intake.count("ticket") == 2


async def test_replays_and_refusals_do_not_wake_the_relay(env: Throwaway) -> None:
    async with running_intake(env, relay_enabled=False) as intake:
        headers = {**intake.auth(), "Idempotency-Key": "wakes-once"}
        woken: list[str] = []
        listener = await asyncpg.connect(asyncpg_dsn(intake.settings.database_url))
        try:
            await listener.add_listener(
                notify_channel(intake.settings.db_schema), lambda *_: woken.append("woken")
            )
            first = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
            assert first.status_code == 201
            await eventually(lambda: woken)
            for _ in range(3):
                again = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
                assert again.headers["idempotent-replayed"] == "true"
            reused = ticket_body(subject="Another request")
            refused = await intake.client.post("/v1/tickets", json=reused, headers=headers)
            assert refused.status_code == 422
            # The next filing into an empty outbox is heard; nothing was heard in between.
            await listener.execute("DELETE FROM outbox_event")
            await intake.file()
            await eventually(lambda: len(woken) >= 2)
            await asyncio.sleep(0.2)
            assert woken == ["woken", "woken"]
        finally:
            await listener.close()


async def test_a_retry_whose_key_was_forgotten_meanwhile_files_anew(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {**intake.auth(), "Idempotency-Key": "expiring"}
    first = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert first.status_code == 201
    look_up = idempotency.first_use

    async def forgotten_first(conn: asyncpg.Connection, **kwargs: Any) -> Any:
        """The maintenance loop forgets the key between the claim and the look-up."""
        await intake.runtime.prune("idempotency keys", _forget_all)
        return await look_up(conn, **kwargs)

    monkeypatch.setattr(idempotency, "first_use", forgotten_first)
    again = await intake.client.post("/v1/tickets", json=ticket_body(), headers=headers)
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]


async def _forget_all(session: AsyncSession, limit: int) -> int:
    return await tickets.prune_idempotency_keys(session, limit, older_than_s=-60)
