"""Monitors as code: one document, one transaction, a dry-run diff, prune."""

from typing import Any

import yaml
from sqlalchemy import text

from tests.harness import Throwaway
from tests.monitor.helpers import Monitor, prepare, running_monitor
from tests.monitor.targets import HttpTarget


async def _apply(
    service: Monitor, doc: Any, *, query: str = "", yaml_body: bool = False, status: int = 200
) -> dict[str, Any]:
    if yaml_body:
        kwargs: dict[str, Any] = {
            "content": yaml.safe_dump(doc),
            "headers": {**service.auth(), "Content-Type": "application/yaml"},
        }
    else:
        kwargs = {"json": doc, "headers": service.auth()}
    response = await service.client.post(f"/v1/monitors/apply{query}", **kwargs)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_apply_creates_updates_and_prunes_to_match_the_document(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env)
    async with running_monitor(settings) as service:
        doc = [
            {"name": f"site-{i}", "product": "canvas-hosting", "url": f"{target.url}/{i}"}
            for i in range(50)
        ]
        dry = await _apply(service, doc, query="?dry_run=true", yaml_body=True)
        assert len(dry["created"]) == 50
        assert (await service.sql("SELECT count(*) FROM monitor"))[0][0] == 0

        first = await _apply(service, doc, yaml_body=True)
        assert len(first["created"]) == 50
        assert (await service.sql("SELECT count(*) FROM check_state"))[0][0] == 50

        doc[0]["url"] = f"{target.url}/changed"
        doc = doc[:40]
        diff = await _apply(service, doc, query="?dry_run=true&prune=true")
        assert diff["updated"] == ["site-0"]
        assert diff["unchanged"] == 39
        assert len(diff["deleted"]) == 10
        assert (await service.sql("SELECT count(*) FROM monitor"))[0][0] == 50

        applied = await _apply(service, {"monitors": doc}, query="?prune=true")
        assert applied["deleted"] == diff["deleted"]
        rows = await service.sql("SELECT target->>'url' FROM monitor WHERE name = 'site-0'")
        assert rows[0][0].endswith("/changed")
        assert (await service.sql("SELECT count(*) FROM monitor"))[0][0] == 40


async def test_one_bad_entry_applies_nothing(env: Throwaway, target: HttpTarget) -> None:
    settings = await prepare(env)
    async with running_monitor(settings) as service:
        doc = [
            {"name": "good", "product": "canvas-hosting", "url": target.url},
            {"name": "bad", "product": "canvas-hosting", "url": "http://169.254.169.254/"},
        ]
        problem = await _apply(service, doc, status=422)
        assert problem["errors"][0]["field"] == "monitors[1].url"
        assert (await service.sql("SELECT count(*) FROM monitor"))[0][0] == 0
        twice = await _apply(service, [doc[0], doc[0]], status=422)
        assert twice["errors"][0]["field"] == "monitors[1].name"
        broken = await service.client.post(
            "/v1/monitors/apply",
            content=b"monitors: [",
            headers={**service.auth(), "Content-Type": "application/yaml"},
        )
        assert broken.status_code == 422
        assert broken.json()["errors"][0]["field"] == "body"


async def test_apply_manages_patch_windows_too(env: Throwaway, target: HttpTarget) -> None:
    settings = await prepare(env)
    async with running_monitor(settings) as service:
        window = {
            "name": "patch tuesday",
            "cron": "0 2 * * 2#2",
            "timezone": "Europe/London",
            "duration_s": 7200,
            "products": ["canvas-hosting"],
        }
        result = await _apply(service, {"monitors": [], "patch_windows": [window]})
        assert result["patch_windows_created"] == ["patch tuesday"]
        timers = await service.sql("SELECT count(*) FROM timer WHERE kind = 'patch_window.close'")
        assert timers[0][0] == 1
        again = await _apply(service, {"monitors": [], "patch_windows": [window]})
        assert again["patch_windows_created"] == []
        assert again["patch_windows_updated"] == []
        pruned = await _apply(service, {"monitors": [], "patch_windows": []}, query="?prune=true")
        assert pruned["patch_windows_deleted"] == ["patch tuesday"]


async def test_apply_refuses_to_change_a_monitors_kind(env: Throwaway, target: HttpTarget) -> None:
    settings = await prepare(env)
    async with running_monitor(settings) as service:
        doc: list[dict[str, Any]] = [
            {"name": "a", "product": "canvas-hosting", "url": f"{target.url}/a"},
            {"name": "b", "product": "canvas-hosting", "url": f"{target.url}/b"},
        ]
        await _apply(service, doc)
        doc[0]["url"] = f"{target.url}/changed"
        doc[1] = {"name": "b", "product": "canvas-hosting", "kind": "heartbeat", "period_s": 60}
        problem = await _apply(service, doc, status=422)
        assert problem["errors"][0]["field"] == "monitors[1].kind"
        rows = await service.sql("SELECT name, kind, target->>'url' FROM monitor ORDER BY name")
        assert [tuple(r) for r in rows] == [
            ("a", "http", f"{target.url}/a"),
            ("b", "http", f"{target.url}/b"),
        ]


async def test_a_region_dropped_from_a_monitor_loses_its_check_state(
    env: Throwaway, target: HttpTarget
) -> None:
    settings = await prepare(env)
    async with running_monitor(settings) as service:
        here = settings.monitor_region
        doc: list[dict[str, Any]] = [
            {"name": name, "product": "canvas-hosting", "url": f"{target.url}/{name}"}
            for name in ("by-apply", "by-put")
        ]
        for entry in doc:
            entry["regions"] = [here, "far"]
        await _apply(service, doc)
        ids = {r[0]: r[1] for r in await service.sql("SELECT name, id FROM monitor")}
        async with service.runtime.sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO check_state (monitor_id, region, due_at)"
                    " SELECT id, 'far', now() + interval '1 hour' FROM monitor"
                )
            )
        assert len(await service.sql("SELECT 1 FROM check_state WHERE region = 'far'")) == 2
        doc[0]["regions"] = [here]
        await _apply(service, doc[:1])
        put = {**doc[1], "regions": [here]}
        replaced = await service.client.put(
            f"/v1/monitors/{ids['by-put']}", json=put, headers=service.auth()
        )
        assert replaced.status_code == 200, replaced.text
        rows = await service.sql("SELECT region FROM check_state WHERE region = 'far'")
        assert rows == []
