"""The monitors API: scopes, CRUD, pause/resume, results and uptime, and bad input as 422."""

from typing import Any

import pytest
from sqlalchemy import text

from tests.harness import Throwaway, eventually
from tests.monitor.helpers import Monitor, prepare, running_monitor
from tests.monitor.targets import HttpTarget


@pytest.fixture
async def service(env: Throwaway) -> Any:
    settings = await prepare(env)
    async with running_monitor(settings) as running:
        yield running


async def _problem(service: Monitor, body: dict[str, Any], status: int = 422) -> dict[str, Any]:
    response = await service.client.post(
        "/v1/monitors", json={"product": "canvas-hosting", **body}, headers=service.auth()
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    return problem


async def test_keys_need_the_monitor_scopes(service: Monitor, target: HttpTarget) -> None:
    body = {"name": "a", "product": "canvas-hosting", "url": target.url}
    assert (await service.client.post("/v1/monitors", json=body)).status_code == 401
    reader = service.auth(service.reader_key)
    refused = await service.client.post("/v1/monitors", json=body, headers=reader)
    assert refused.status_code == 403
    created = await service.create(name="a", url=target.url)
    listed = await service.client.get("/v1/monitors", headers=reader)
    assert [m["id"] for m in listed.json()["items"]] == [created["id"]]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"name": "x", "url": "ftp://example.com/"}, "url", "http or https"),
        ({"name": "x", "url": "http://169.254.169.254/latest/"}, "url", "cloud metadata"),
        ({"name": "x", "url": "http://10.0.0.8/"}, "url", "private"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "interval_s": 0.01}, "interval_s", "at least"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "product": "nope"}, "product", "no active"),
        (
            {"name": "x", "url": "http://127.0.0.1:9/", "expected_status": ["2xx"]},
            "expected_status",
            "",
        ),
        ({"name": "x", "kind": "tcp", "host": "169.254.169.254", "port": 80}, "host", "metadata"),
        ({"name": "x", "kind": "heartbeat"}, "body", "period_s"),
    ],
)
async def test_bad_monitors_are_refused_with_the_field_and_reason(
    service: Monitor, body: dict[str, Any], field: str, reason: str
) -> None:
    problem = await _problem(service, body)
    assert problem["errors"][0]["field"].endswith(field), problem
    assert reason in problem["errors"][0]["reason"], problem
    count = await service.sql("SELECT count(*) FROM monitor")
    assert count[0][0] == 0


async def test_a_monitor_can_be_read_replaced_paused_resumed_and_deleted(
    service: Monitor, target: HttpTarget
) -> None:
    created = await service.create(name="web", url=f"{target.url}/", tags=["eu", "web"])
    assert created["state"] == "pending"
    await eventually(lambda: service.in_state(created["id"], "up"), timeout_s=5)
    body = {"name": "web-2", "product": "canvas-hosting", "url": f"{target.url}/v2", "tags": ["x"]}
    replaced = await service.client.put(
        f"/v1/monitors/{created['id']}", json=body, headers=service.auth()
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["url"].endswith("/v2")
    assert replaced.json()["tags"] == ["x"]
    paused = await service.client.post(
        f"/v1/monitors/{created['id']}/pause", headers=service.auth()
    )
    assert paused.json()["state"] == "paused"
    await eventually(lambda: service.in_state(created["id"], "paused"))
    seen = len(target.seen)
    resumed = await service.client.post(
        f"/v1/monitors/{created['id']}/resume", headers=service.auth()
    )
    assert resumed.json()["state"] == "pending"
    await eventually(lambda: len(target.requests("/v2")) > 0 and len(target.seen) > seen)
    results = await service.client.get(
        f"/v1/monitors/{created['id']}/results", headers=service.auth()
    )
    assert results.status_code == 200
    assert results.json()[0]["outcome"] == "up"
    uptime = await service.client.get(
        f"/v1/monitors/{created['id']}/uptime?window=24h", headers=service.auth()
    )
    assert uptime.json()["uptime_pct"] == 100.0
    uptime_90 = await service.client.get(
        f"/v1/monitors/{created['id']}/uptime?window=90d", headers=service.auth()
    )
    assert uptime_90.json()["checks"] >= 1
    deleted = await service.client.delete(f"/v1/monitors/{created['id']}", headers=service.auth())
    assert deleted.status_code == 204
    gone = await service.client.get(f"/v1/monitors/{created['id']}", headers=service.auth())
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


async def test_a_taken_name_is_a_conflict(service: Monitor, target: HttpTarget) -> None:
    await service.create(name="dup", url=target.url)
    await _problem(service, {"name": "dup", "url": target.url}, status=409)


async def test_monitors_list_by_page(service: Monitor, target: HttpTarget) -> None:
    for i in range(5):
        await service.create(name=f"m{i}", url=target.url, paused=True)
    first = (await service.client.get("/v1/monitors?limit=3", headers=service.auth())).json()
    assert [m["name"] for m in first["items"]] == ["m0", "m1", "m2"]
    second = (
        await service.client.get(
            f"/v1/monitors?limit=3&after={first['next_after']}", headers=service.auth()
        )
    ).json()
    assert [m["name"] for m in second["items"]] == ["m3", "m4"]
    assert second["next_after"] is None
    paused = await service.client.get("/v1/monitors?state=paused", headers=service.auth())
    assert len(paused.json()["items"]) == 5


async def test_results_are_pruned_after_retention_and_rolled_up(
    service: Monitor, target: HttpTarget
) -> None:
    from monitor.results import prune_results, roll_up

    created = await service.create(name="r", url=target.url)
    await eventually(lambda: service.in_state(created["id"], "up"), timeout_s=5)
    async with service.runtime.sessions() as session, session.begin():
        await session.execute(text("UPDATE check_result SET at_s = at_s - 8 * 86400"))
        await session.execute(
            text(
                "INSERT INTO check_result (monitor_key, at_s, latency_ms, region_key, outcome)"
                " SELECT key, floor(extract(epoch FROM now()))::int - 1, 5, 1, 0 FROM monitor"
            )
        )
        await roll_up(session)
        pruned = await prune_results(session, 1000, older_than_s=7 * 86400)
    assert pruned >= 1
    left = await service.sql(
        "SELECT count(*) FROM check_result WHERE at_s < extract(epoch FROM now()) - 86400"
    )
    assert left[0][0] == 0
    hourly = await service.sql("SELECT sum(checks) FROM rollup_hourly")
    assert hourly[0][0] >= 1


async def test_a_product_announced_by_intake_can_be_monitored(
    service: Monitor, target: HttpTarget, env: Throwaway
) -> None:
    from datetime import UTC, datetime

    from contracts.products import ProductChanged
    from servicekit.catalogue import product_exists
    from tests.harness import wait_connected
    from tests.intake.helpers import inject

    body = {"name": "new", "product": "new-product", "url": target.url}
    refused = await service.client.post("/v1/monitors", json=body, headers=service.auth())
    assert refused.status_code == 422
    await wait_connected(service.runtime)
    await inject(
        env,
        ProductChanged(
            slug="new-product", name="New Product", active=True, changed_at=datetime.now(UTC)
        ),
        producer="intake",
    )

    async def known() -> bool:
        async with service.runtime.sessions() as session:
            return await product_exists(session, "new-product")

    await eventually(known, timeout_s=10)
    await service.create(**body)


async def test_a_monitor_cannot_change_its_kind(service: Monitor, target: HttpTarget) -> None:
    created = await service.create(name="web", url=f"{target.url}/")
    body = {"name": "web", "product": "canvas-hosting", "kind": "heartbeat", "period_s": 60}
    refused = await service.client.put(
        f"/v1/monitors/{created['id']}", json=body, headers=service.auth()
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "kind"
    rows = await service.sql(
        "SELECT kind, heartbeat_token FROM monitor WHERE id = CAST(:id AS uuid)", id=created["id"]
    )
    assert rows[0] == ("http", None)
